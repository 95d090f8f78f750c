// Typed wrappers for C that Swift cannot import: ncurses' function-like macros and
// wide-character API, and libcurl's variadic curl_easy_setopt / curl_easy_getinfo.
// One prefixed function per macro or variadic call, nothing clever.
#ifndef FAILOVER_LAB_CSHIMS_H
#define FAILOVER_LAB_CSHIMS_H

#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#ifndef _XOPEN_SOURCE_EXTENDED
#define _XOPEN_SOURCE_EXTENDED 1
#endif

#include <curl/curl.h>
#include <ncursesw/curses.h>
#include <stdint.h>

// MARK: libcurl

/// curl_easy_setopt with a long argument.
CURLcode fl_curl_setopt_long(CURL *handle, CURLoption option, long value);
/// curl_easy_setopt with a string argument (copied by libcurl for most options).
CURLcode fl_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
/// curl_easy_setopt with a pointer argument (slists, user data).
CURLcode fl_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
/// curl_easy_setopt with a curl_off_t argument.
CURLcode fl_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);

typedef size_t (*fl_curl_data_callback)(char *ptr, size_t size, size_t nmemb, void *userdata);
/// CURLOPT_WRITEFUNCTION / CURLOPT_HEADERFUNCTION / CURLOPT_READFUNCTION.
CURLcode fl_curl_setopt_data_callback(CURL *handle, CURLoption option, fl_curl_data_callback cb);

typedef int (*fl_curl_sockopt_callback)(void *clientp, curl_socket_t fd, curlsocktype purpose);
/// CURLOPT_SOCKOPTFUNCTION, so a caller can count the connections libcurl opens.
CURLcode fl_curl_setopt_sockopt_callback(CURL *handle, fl_curl_sockopt_callback cb);

/// curl_easy_getinfo for a long result.
CURLcode fl_curl_getinfo_long(CURL *handle, CURLINFO info, long *out);
/// curl_easy_getinfo for a curl_off_t result (the *_T timing and size infos).
CURLcode fl_curl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *out);
/// curl_easy_getinfo for a pointer result (CURLINFO_PRIVATE).
CURLcode fl_curl_getinfo_pointer(CURL *handle, CURLINFO info, void **out);
/// curl_easy_getinfo for a string result (CURLINFO_EFFECTIVE_URL).
CURLcode fl_curl_getinfo_string(CURL *handle, CURLINFO info, const char **out);

/// curl_multi_setopt with a long argument.
CURLMcode fl_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);

/// curl_multi_setopt with a pointer argument.
CURLMcode fl_curl_multi_setopt_pointer(CURLM *multi, CURLMoption option, void *value);

/// libcurl's socket callback (CURLMOPT_SOCKETFUNCTION) and timer callback (CURLMOPT_TIMERFUNCTION).
typedef int (*fl_curl_socket_callback)(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp);
typedef int (*fl_curl_timer_callback)(CURLM *multi, long timeout_ms, void *userp);
CURLMcode fl_curl_multi_setopt_socket_callback(CURLM *multi, fl_curl_socket_callback cb, void *userp);
CURLMcode fl_curl_multi_setopt_timer_callback(CURLM *multi, fl_curl_timer_callback cb, void *userp);

// MARK: epoll for the load driver (Linux; elsewhere these return -1 and the driver polls)

/// An epoll instance (close-on-exec), or -1.
int fl_epoll_create(void);
/// Watches `fd` for reading (bit 1) and/or writing (bit 2): adds it, or changes what is watched
/// when it is already there. 0 on success, -1 with errno.
int fl_epoll_watch(int ep, int fd, int what);
/// Stops watching `fd` (fine when it was already closed).
void fl_epoll_forget(int ep, int fd);
/// Waits up to `timeout_ms` for at most `max` (at most 4,096) events: each one's descriptor into `fds` and
/// what it is ready for into `what` (1 read, 2 write, 4 error, as libcurl's CURL_CSELECT_*).
/// The number of events, 0 on a timeout, -1 on an error (EINTR included).
int fl_epoll_wait(int ep, int *fds, int *what, int max, int timeout_ms);
/// An eventfd (non-blocking, close-on-exec) to wake an epoll wait from another thread, or -1.
int fl_wake_create(void);
void fl_wake_signal(int fd);
void fl_wake_drain(int fd);
void fl_fd_close(int fd);

// MARK: precise timers for the load driver

/// A monotonic clock reading in nanoseconds (CLOCK_MONOTONIC).
uint64_t fl_monotonic_ns(void);
/// The wall clock in nanoseconds since 1970 (CLOCK_REALTIME).
int64_t fl_wall_ns(void);
/// A non-blocking timer descriptor on CLOCK_MONOTONIC (timerfd on Linux), or -1 where there is none.
/// The driver hands it to curl_multi_poll as an extra descriptor so that a wait ends on the
/// nanosecond a request is due instead of on curl's millisecond timeout.
int fl_timer_create(void);
/// Arms the timer to fire once at an absolute fl_monotonic_ns() value; 0 disarms it.
int fl_timer_arm_at(int fd, uint64_t monotonic_ns);
/// Reads and discards the timer's expiry count so that it stops being readable.
void fl_timer_drain(int fd);
/// Names the calling thread (15 bytes at most on Linux), for top -H and perf.
void fl_set_thread_name(const char *name);
/// Closes the timer descriptor.
void fl_timer_close(int fd);

// MARK: ncurses

/// getmaxyx(stdscr, rows, cols).
void fl_nc_screen_size(int *rows, int *cols);
/// COLOR_PAIR(n).
int fl_nc_color_pair(int n);
/// The A_* attribute constants.
attr_t fl_nc_attr_bold(void);
attr_t fl_nc_attr_dim(void);
attr_t fl_nc_attr_reverse(void);
attr_t fl_nc_attr_underline(void);
attr_t fl_nc_attr_normal(void);
/// Draws one wide character with attributes and colour pair at (y, x) on stdscr.
int fl_nc_put_wide(int y, int x, wchar_t ch, attr_t attrs, short pair);
/// KEY_RESIZE, KEY_UP, KEY_DOWN, KEY_LEFT, KEY_RIGHT.
int fl_nc_key_resize(void);
int fl_nc_key_up(void);
int fl_nc_key_down(void);
int fl_nc_key_left(void);
int fl_nc_key_right(void);
/// The ERR return value.
int fl_nc_err(void);
/// OK and KEY_CODE_YES, the other results of get_wch.
int fl_nc_ok(void);
int fl_nc_key_code_yes(void);
/// get_wch on stdscr: OK with a character in *ch, KEY_CODE_YES with a key code in *ch, or ERR.
int fl_nc_get_wch(unsigned int *ch);
/// timeout(ms) on stdscr: how long get_wch waits (-1 forever, 0 not at all).
void fl_nc_timeout(int ms);
/// keypad(stdscr, on).
int fl_nc_keypad(int on);
/// The number of colours the terminal has (COLORS), 0 without colour support.
int fl_nc_colors(void);
/// init_pair, or init_extended_pair where colours go past 255.
int fl_nc_init_pair(int pair, int fg, int bg);
/// erase() and clearok(stdscr, TRUE): the next refresh repaints everything.
void fl_nc_erase_all(void);
/// refresh().
int fl_nc_refresh(void);
/// Moves the hidden cursor to (y, x) so terminals that show it anyway keep it out of the way.
int fl_nc_move(int y, int x);
/// Sets ESCDELAY (ms), so a lone Escape key is not held back for a second.
void fl_nc_set_escdelay(int ms);

#endif
