#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* pthread_setname_np */
#endif
#include "CShims.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#endif

CURLcode fl_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
CURLcode fl_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
CURLcode fl_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
CURLcode fl_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}
CURLcode fl_curl_setopt_data_callback(CURL *handle, CURLoption option, fl_curl_data_callback cb) {
    return curl_easy_setopt(handle, option, cb);
}
CURLcode fl_curl_setopt_sockopt_callback(CURL *handle, fl_curl_sockopt_callback cb) {
    return curl_easy_setopt(handle, CURLOPT_SOCKOPTFUNCTION, cb);
}
CURLcode fl_curl_getinfo_long(CURL *handle, CURLINFO info, long *out) {
    return curl_easy_getinfo(handle, info, out);
}
CURLcode fl_curl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *out) {
    return curl_easy_getinfo(handle, info, out);
}
CURLcode fl_curl_getinfo_pointer(CURL *handle, CURLINFO info, void **out) {
    return curl_easy_getinfo(handle, info, out);
}
CURLcode fl_curl_getinfo_string(CURL *handle, CURLINFO info, const char **out) {
    return curl_easy_getinfo(handle, info, (char **)out);
}
CURLMcode fl_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}
CURLMcode fl_curl_multi_setopt_pointer(CURLM *multi, CURLMoption option, void *value) {
    return curl_multi_setopt(multi, option, value);
}

CURLMcode fl_curl_multi_setopt_socket_callback(CURLM *multi, fl_curl_socket_callback cb, void *userp) {
    CURLMcode rc = curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, cb);
    if (rc != CURLM_OK) return rc;
    return curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, userp);
}
CURLMcode fl_curl_multi_setopt_timer_callback(CURLM *multi, fl_curl_timer_callback cb, void *userp) {
    CURLMcode rc = curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, cb);
    if (rc != CURLM_OK) return rc;
    return curl_multi_setopt(multi, CURLMOPT_TIMERDATA, userp);
}

#if defined(__linux__)
int fl_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
int fl_epoll_watch(int ep, int fd, int what) {
    struct epoll_event ev;
    ev.events = ((what & 1) ? EPOLLIN : 0) | ((what & 2) ? EPOLLOUT : 0);
    ev.data.fd = fd;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev) == 0) return 0;
    if (errno != ENOENT) return -1;
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}
void fl_epoll_forget(int ep, int fd) {
    struct epoll_event ev = {0};
    (void)epoll_ctl(ep, EPOLL_CTL_DEL, fd, &ev);
}
int fl_epoll_wait(int ep, int *fds, int *what, int max, int timeout_ms) {
    static __thread struct epoll_event evs[4096];
    if (max > 4096) max = 4096;
    int n = epoll_wait(ep, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        fds[i] = evs[i].data.fd;
        int w = 0;
        if (evs[i].events & EPOLLIN) w |= 1;
        if (evs[i].events & EPOLLOUT) w |= 2;
        if (evs[i].events & (EPOLLERR | EPOLLHUP)) w |= 4;
        what[i] = w;
    }
    return n;
}
int fl_wake_create(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
void fl_wake_signal(int fd) {
    uint64_t one = 1;
    if (fd >= 0) (void)!write(fd, &one, sizeof one);
}
void fl_wake_drain(int fd) {
    uint64_t n;
    if (fd >= 0) (void)!read(fd, &n, sizeof n);
}
#else
int fl_epoll_create(void) { return -1; }
int fl_epoll_watch(int ep, int fd, int what) { (void)ep; (void)fd; (void)what; return -1; }
void fl_epoll_forget(int ep, int fd) { (void)ep; (void)fd; }
int fl_epoll_wait(int ep, int *fds, int *what, int max, int timeout_ms) { (void)ep; (void)fds; (void)what; (void)max; (void)timeout_ms; return -1; }
int fl_wake_create(void) { return -1; }
void fl_wake_signal(int fd) { (void)fd; }
void fl_wake_drain(int fd) { (void)fd; }
#endif
void fl_fd_close(int fd) {
    if (fd >= 0) close(fd);
}

uint64_t fl_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
int64_t fl_wall_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + (int64_t)ts.tv_nsec;
}
int fl_timer_create(void) {
#if defined(__linux__)
    return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
#else
    return -1;
#endif
}
int fl_timer_arm_at(int fd, uint64_t monotonic_ns) {
#if defined(__linux__)
    struct itimerspec spec = {0};
    spec.it_value.tv_sec = (time_t)(monotonic_ns / 1000000000ull);
    spec.it_value.tv_nsec = (long)(monotonic_ns % 1000000000ull);
    return timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, NULL);
#else
    (void)fd; (void)monotonic_ns;
    return -1;
#endif
}
void fl_timer_drain(int fd) {
    uint64_t expirations;
    while (read(fd, &expirations, sizeof expirations) > 0) {}
}
void fl_set_thread_name(const char *name) {
#if defined(__linux__)
    pthread_setname_np(pthread_self(), name);
#elif defined(__APPLE__)
    pthread_setname_np(name);
#else
    (void)name;
#endif
}
void fl_timer_close(int fd) {
    if (fd >= 0) close(fd);
}

void fl_nc_screen_size(int *rows, int *cols) {
    int r, c;
    getmaxyx(stdscr, r, c);
    *rows = r;
    *cols = c;
}
int fl_nc_color_pair(int n) { return (int)COLOR_PAIR(n); }
attr_t fl_nc_attr_bold(void) { return A_BOLD; }
attr_t fl_nc_attr_dim(void) { return A_DIM; }
attr_t fl_nc_attr_reverse(void) { return A_REVERSE; }
attr_t fl_nc_attr_underline(void) { return A_UNDERLINE; }
attr_t fl_nc_attr_normal(void) { return A_NORMAL; }
int fl_nc_put_wide(int y, int x, wchar_t ch, attr_t attrs, short pair) {
    cchar_t cell;
    wchar_t text[2] = {ch, L'\0'};
    setcchar(&cell, text, attrs, pair, NULL);
    return mvadd_wch(y, x, &cell);
}
int fl_nc_key_resize(void) { return KEY_RESIZE; }
int fl_nc_key_up(void) { return KEY_UP; }
int fl_nc_key_down(void) { return KEY_DOWN; }
int fl_nc_key_left(void) { return KEY_LEFT; }
int fl_nc_key_right(void) { return KEY_RIGHT; }
int fl_nc_err(void) { return ERR; }
int fl_nc_ok(void) { return OK; }
int fl_nc_key_code_yes(void) { return KEY_CODE_YES; }
int fl_nc_get_wch(unsigned int *ch) {
    wint_t value = 0;
    int result = get_wch(&value);
    *ch = (unsigned int)value;
    return result;
}
void fl_nc_timeout(int ms) { timeout(ms); }
int fl_nc_keypad(int on) { return keypad(stdscr, on ? TRUE : FALSE); }
int fl_nc_colors(void) { return has_colors() ? COLORS : 0; }
int fl_nc_init_pair(int pair, int fg, int bg) {
#if NCURSES_EXT_COLORS
    return init_extended_pair(pair, fg, bg);
#else
    return init_pair((short)pair, (short)fg, (short)bg);
#endif
}
void fl_nc_erase_all(void) {
    erase();
    clearok(stdscr, TRUE);
}
int fl_nc_refresh(void) { return refresh(); }
int fl_nc_move(int y, int x) { return move(y, x); }
void fl_nc_set_escdelay(int ms) { set_escdelay(ms); }
