/* loadgen: closed-loop HTTP load generator for cnnd (libcurl multi interface).
 * C connections each send the same image (POST, keep-alive) again as soon as the previous
 * answer arrives, for S seconds after an optional warm-up; prints requests/s, images/s,
 * p50/p90/p99 latency and the answers by status, as text or one JSON object.
 * --v2 wraps the image in a KServe v2 infer request with the binary data extension. */
#include <curl/curl.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STATUS 600 /* index 0 = transport error (no HTTP status) */

struct opts {
    const char *url, *file, *content_type, *input_name, *output_name;
    int concurrency, threads, v2, json, top_k;
    double duration_s, warmup_s;
};

struct body {
    char *data;
    size_t len;
    size_t header_len; /* v2: the JSON header part, for Inference-Header-Content-Length */
};

struct worker;

struct conn {
    CURL *h;
    int64_t start_ns;
    struct worker *w;
};

struct worker {
    const struct opts *o;
    const struct body *body;
    struct curl_slist *headers;
    int nconn;
    int64_t count_from_ns, stop_ns;
    int64_t *lat_ns; /* 2xx latencies inside the window */
    size_t nlat, cap;
    uint64_t by_status[MAX_STATUS];
    uint64_t other_status; /* >= MAX_STATUS */
    uint64_t bytes_in;
    char first_error[CURL_ERROR_SIZE];
    int failed; /* setup failed */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --url URL --file IMG [--content-type TYPE] [--concurrency C]\n"
               "               [--duration S] [--warmup S] [--threads T] [--v2] [--top-k K]\n"
               "               [--input-name NAME] [--output-name NAME] [--json]\n"
               "Closed-loop load: C connections POST IMG to URL again as soon as each answer\n"
               "arrives, for S seconds (after W seconds of warm-up that are not counted).\n"
               "options:\n"
               "  --content-type T  body type (default image/png); ignored with --v2\n"
               "  --concurrency C   connections in flight, 1..10000 (default 8)\n"
               "  --duration S      measured seconds (default 10)\n"
               "  --warmup S        unmeasured seconds first (default 1)\n"
               "  --threads T       client threads sharing the connections (default 1)\n"
               "  --v2              send a KServe v2 infer request: BYTES input holding the image\n"
               "                    with the binary data extension, output with classification K\n"
               "  --top-k K         classification K for --v2 (default 1)\n"
               "  --input-name N    v2 input tensor name (default input)\n"
               "  --output-name N   v2 output tensor name (default output)\n"
               "  --json            print one JSON object instead of text\n"
               "images/s counts 2xx answers (one image per request); latency percentiles are\n"
               "over the 2xx answers that completed inside the measured window.\n"
               "example: loadgen --url http://127.0.0.1:8080/v1/models/fashion/classify \\\n"
               "           --file models/samples/sneaker.png --concurrency 64 --duration 10\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.content_type = "image/png",
                       .input_name = "input",
                       .output_name = "output",
                       .concurrency = 8,
                       .threads = 1,
                       .top_k = 1,
                       .duration_s = 10,
                       .warmup_s = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0, takes = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(a, "--v2")) {
            o->v2 = 1, takes = 0;
        } else if (!strcmp(a, "--json")) {
            o->json = 1, takes = 0;
        } else if (!v) {
            fprintf(stderr, "loadgen: %s needs a value\n", a);
            return -1;
        } else if (!strcmp(a, "--url")) {
            o->url = v;
        } else if (!strcmp(a, "--file")) {
            o->file = v;
        } else if (!strcmp(a, "--content-type")) {
            o->content_type = v;
        } else if (!strcmp(a, "--input-name")) {
            o->input_name = v;
        } else if (!strcmp(a, "--output-name")) {
            o->output_name = v;
        } else if (!strcmp(a, "--concurrency")) {
            bad = parse_int(v, 1, 10000, &o->concurrency);
        } else if (!strcmp(a, "--threads")) {
            bad = parse_int(v, 1, 64, &o->threads);
        } else if (!strcmp(a, "--top-k")) {
            bad = parse_int(v, 1, 100000, &o->top_k);
        } else if (!strcmp(a, "--duration")) {
            bad = parse_double(v, 0.01, 86400, &o->duration_s);
        } else if (!strcmp(a, "--warmup")) {
            bad = parse_double(v, 0, 86400, &o->warmup_s);
        } else {
            fprintf(stderr, "loadgen: unknown option %s (see --help)\n", a);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "loadgen: bad value for %s: %s\n", a, v);
            return -1;
        }
        i += takes;
    }
    if (!o->url || !o->file) {
        fprintf(stderr, "loadgen: --url and --file are required (see --help)\n");
        return -1;
    }
    if (o->threads > o->concurrency)
        o->threads = o->concurrency;
    return 0;
}

static int read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "loadgen: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb, cap *= 2;
    }
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad || n == 0) {
        fprintf(stderr, "loadgen: %s: %s\n", path, n == 0 && !bad ? "empty file" : "read failed");
        free(buf);
        return -1;
    }
    *data = buf;
    *len = n;
    return 0;
}

/* The v2 body: JSON header, then the BYTES element (4-byte little-endian length + image). */
static int make_v2_body(const struct opts *o, const char *img, size_t img_len, struct body *b)
{
    char hdr[1024];
    int hn = snprintf(hdr, sizeof hdr,
                      "{\"inputs\":[{\"name\":\"%s\",\"shape\":[1],\"datatype\":\"BYTES\","
                      "\"parameters\":{\"binary_data_size\":%zu}}],"
                      "\"outputs\":[{\"name\":\"%s\",\"parameters\":{\"classification\":%d}}]}",
                      o->input_name, img_len + 4, o->output_name, o->top_k);
    if (hn < 0 || (size_t)hn >= sizeof hdr || img_len > UINT32_MAX) {
        fprintf(stderr, "loadgen: v2 header too long or image too large\n");
        return -1;
    }
    b->len = (size_t)hn + 4 + img_len;
    b->data = malloc(b->len);
    if (!b->data)
        return -1;
    memcpy(b->data, hdr, (size_t)hn);
    unsigned char *p = (unsigned char *)b->data + hn;
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)((uint64_t)img_len >> (8 * i));
    memcpy(p + 4, img, img_len);
    b->header_len = (size_t)hn;
    return 0;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
    (void)ptr;
    struct conn *c = arg;
    c->w->bytes_in += size * nmemb;
    return size * nmemb;
}

static int setup_conn(struct conn *c, struct worker *w)
{
    c->w = w;
    c->h = curl_easy_init();
    if (!c->h)
        return -1;
    curl_easy_setopt(c->h, CURLOPT_URL, w->o->url);
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, w->body->data);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)w->body->len);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, w->headers);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, 60000L);
    return 0;
}

static void record(struct worker *w, struct conn *c, CURLcode rc, int64_t t)
{
    long status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    else if (!w->first_error[0])
        snprintf(w->first_error, sizeof w->first_error, "%s", curl_easy_strerror(rc));
    if (t < w->count_from_ns || t > w->stop_ns)
        return; /* warm-up or drain: not measured */
    if (status >= 0 && status < MAX_STATUS)
        w->by_status[status]++;
    else
        w->other_status++;
    if (status < 200 || status > 299)
        return;
    if (w->nlat == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 4096;
        int64_t *nl = realloc(w->lat_ns, ncap * sizeof *nl);
        if (!nl)
            return; /* counted, latency dropped */
        w->lat_ns = nl, w->cap = ncap;
    }
    w->lat_ns[w->nlat++] = t - c->start_ns;
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    CURLM *m = curl_multi_init();
    struct conn *conns = calloc((size_t)w->nconn, sizeof *conns);
    if (!m || !conns) {
        w->failed = 1;
        goto out;
    }
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, (long)w->nconn);
    for (int i = 0; i < w->nconn; i++) {
        if (setup_conn(&conns[i], w)) {
            w->failed = 1;
            goto out;
        }
        conns[i].start_ns = now_ns();
        curl_multi_add_handle(m, conns[i].h);
    }
    int running = w->nconn;
    while (running > 0) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct conn *c;
            CURL *h = msg->easy_handle;
            CURLcode rc = msg->data.result;
            curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&c);
            int64_t t = now_ns();
            record(w, c, rc, t);
            curl_multi_remove_handle(m, h);
            if (t < w->stop_ns) {
                c->start_ns = now_ns();
                curl_multi_add_handle(m, h);
                running++;
            }
        }
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
out:
    if (conns) {
        for (int i = 0; i < w->nconn; i++)
            if (conns[i].h) {
                curl_multi_remove_handle(m, conns[i].h);
                curl_easy_cleanup(conns[i].h);
            }
        free(conns);
    }
    if (m)
        curl_multi_cleanup(m);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v (n > 0), in milliseconds. */
static double pct_ms(const int64_t *v, size_t n, double p)
{
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return (double)v[k - 1] / 1e6;
}

static void report(const struct opts *o, struct worker *ws, int nw)
{
    uint64_t by_status[MAX_STATUS] = {0}, other = 0, total = 0, ok = 0;
    size_t nlat = 0;
    for (int i = 0; i < nw; i++) {
        for (int s = 0; s < MAX_STATUS; s++)
            by_status[s] += ws[i].by_status[s];
        other += ws[i].other_status;
        nlat += ws[i].nlat;
    }
    int64_t *lat = malloc((nlat ? nlat : 1) * sizeof *lat);
    size_t k = 0;
    double sum_ms = 0;
    for (int i = 0; i < nw && lat; i++)
        for (size_t j = 0; j < ws[i].nlat; j++) {
            lat[k++] = ws[i].lat_ns[j];
            sum_ms += (double)ws[i].lat_ns[j] / 1e6;
        }
    if (lat)
        qsort(lat, nlat, sizeof *lat, cmp_i64);
    for (int s = 0; s < MAX_STATUS; s++) {
        total += by_status[s];
        if (s >= 200 && s <= 299)
            ok += by_status[s];
    }
    total += other;
    double rps = (double)total / o->duration_s, ips = (double)ok / o->duration_s;
    double p50 = 0, p90 = 0, p99 = 0, mean = 0, max = 0;
    if (lat && nlat) {
        p50 = pct_ms(lat, nlat, 50), p90 = pct_ms(lat, nlat, 90), p99 = pct_ms(lat, nlat, 99);
        mean = sum_ms / (double)nlat, max = (double)lat[nlat - 1] / 1e6;
    }
    const char *err = "";
    for (int i = 0; i < nw; i++)
        if (ws[i].first_error[0]) {
            err = ws[i].first_error;
            break;
        }
    if (o->json) {
        printf("{\"url\":\"%s\",\"v2\":%s,\"concurrency\":%d,\"threads\":%d,\"duration_s\":%g,"
               "\"requests\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"requests_per_s\":%.1f,"
               "\"images_per_s\":%.1f,\"latency_ms\":{\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,"
               "\"p99\":%.3f,\"max\":%.3f},\"errors\":{",
               o->url, o->v2 ? "true" : "false", o->concurrency, o->threads, o->duration_s, total,
               ok, rps, ips, mean, p50, p90, p99, max);
        const char *sep = "";
        for (int s = 0; s < MAX_STATUS; s++)
            if (by_status[s] && (s < 200 || s > 299)) {
                if (s)
                    printf("%s\"%d\":%" PRIu64, sep, s, by_status[s]);
                else
                    printf("%s\"transport\":%" PRIu64, sep, by_status[s]);
                sep = ",";
            }
        if (other)
            printf("%s\"other\":%" PRIu64, sep, other);
        printf("}}\n");
    } else {
        printf("url          %s%s\n", o->url, o->v2 ? " (v2 binary)" : "");
        printf("concurrency  %d (threads %d), %.1f s measured\n", o->concurrency, o->threads,
               o->duration_s);
        printf("requests     %" PRIu64 " (%.1f/s), ok %" PRIu64 "\n", total, rps, ok);
        printf("images/s     %.1f\n", ips);
        printf("latency ms   mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", mean, p50, p90,
               p99, max);
        uint64_t nerr = total - ok;
        printf("errors       %" PRIu64 "%s", nerr, nerr ? ":" : "\n");
        for (int s = 0; s < MAX_STATUS; s++)
            if (by_status[s] && (s < 200 || s > 299)) {
                if (s)
                    printf(" %d=%" PRIu64, s, by_status[s]);
                else
                    printf(" transport=%" PRIu64, by_status[s]);
            }
        if (other)
            printf(" other=%" PRIu64, other);
        if (nerr)
            printf("\n");
        if (err[0])
            printf("first transport error: %s\n", err);
    }
    free(lat);
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_args(argc, argv, &o))
        return 2;
    struct body body = {0};
    char *img;
    size_t img_len;
    if (read_file(o.file, &img, &img_len))
        return 1;
    if (o.v2) {
        int bad = make_v2_body(&o, img, img_len, &body);
        free(img);
        if (bad)
            return 1;
    } else {
        body.data = img, body.len = img_len;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
        fprintf(stderr, "loadgen: curl_global_init failed\n");
        return 1;
    }
    struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
    char line[256];
    if (o.v2) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
        snprintf(line, sizeof line, "Inference-Header-Content-Length: %zu", body.header_len);
    } else {
        snprintf(line, sizeof line, "Content-Type: %s", o.content_type);
    }
    hdrs = curl_slist_append(hdrs, line);

    struct worker *ws = calloc((size_t)o.threads, sizeof *ws);
    pthread_t *tids = calloc((size_t)o.threads, sizeof *tids);
    if (!ws || !tids || !hdrs) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    int64_t t0 = now_ns();
    int64_t count_from = t0 + (int64_t)(o.warmup_s * 1e9);
    int64_t stop = count_from + (int64_t)(o.duration_s * 1e9);
    int started = 0, failed = 0;
    for (int i = 0; i < o.threads; i++) {
        ws[i] =
            (struct worker){.o = &o,
                            .body = &body,
                            .headers = hdrs,
                            .nconn = o.concurrency / o.threads + (i < o.concurrency % o.threads),
                            .count_from_ns = count_from,
                            .stop_ns = stop};
        if (pthread_create(&tids[i], NULL, worker_run, &ws[i]))
            break;
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
        failed |= ws[i].failed;
    }
    if (started < o.threads || failed) {
        fprintf(stderr, "loadgen: could not start all client threads/connections\n");
        return 1;
    }
    report(&o, ws, o.threads);
    for (int i = 0; i < o.threads; i++)
        free(ws[i].lat_ns);
    free(ws);
    free(tids);
    curl_slist_free_all(hdrs);
    free(body.data);
    curl_global_cleanup();
    return 0;
}
