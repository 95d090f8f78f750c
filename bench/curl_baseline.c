/*
 * The ceiling for any libcurl driver: a minimal closed loop on libcurl's multi interface
 * with N reused easy handles, nothing recorded, nothing parsed. bench/driver.sh compiles it
 * and compares `failover-lab drive --concurrency N` with it.
 *
 *   cc -O2 -o curl_baseline curl_baseline.c -lcurl
 *   ./curl_baseline URL CONCURRENCY SECONDS
 *
 * Prints: requests=<n> seconds=<s> rps=<r> errors=<e>
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata) {
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s URL CONCURRENCY SECONDS\n", argv[0]);
        return 64;
    }
    const char *url = argv[1];
    int concurrency = atoi(argv[2]);
    double seconds = atof(argv[3]);
    if (concurrency < 1 || seconds <= 0) {
        fprintf(stderr, "CONCURRENCY must be >= 1 and SECONDS > 0\n");
        return 64;
    }
    /* The same request as failover-lab drive's default: POST JSON. */
    static const char body[] = "{\"model\": \"\", \"messages\": [{\"role\": \"user\", \"content\": \"What is 2+2?\"}]}";
    curl_global_init(CURL_GLOBAL_ALL);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)concurrency);
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Expect:");
    /* drive names itself on every request; so does the baseline, so both send the same bytes. */
    headers = curl_slist_append(headers, "User-Agent: failover-lab-driver/1");
    for (int i = 0; i < concurrency; i++) {
        CURL *e = curl_easy_init();
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(sizeof body - 1));
        curl_multi_add_handle(multi, e);
    }
    long done = 0, errors = 0;
    int running = 0;
    double start = now_seconds(), end = start + seconds;
    int stopping = 0;
    for (;;) {
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            CURL *e = msg->easy_handle;
            if (msg->data.result != CURLE_OK) errors++;
            done++;
            curl_multi_remove_handle(multi, e);
            if (!stopping) curl_multi_add_handle(multi, e);
            else curl_easy_cleanup(e);
        }
        if (!stopping && now_seconds() >= end) stopping = 1;
        if (stopping && running == 0) {
            /* Collect any last messages, then stop. */
            break;
        }
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    double elapsed = now_seconds() - start;
    printf("requests=%ld seconds=%.3f rps=%.1f errors=%ld\n", done, elapsed, done / elapsed, errors);
    curl_slist_free_all(headers);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return 0;
}
