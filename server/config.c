/* cnnd configuration (see config.h): the option table, value parsing with ranges, and the
 * three sources -- INI file (inih), CNND_* environment variables, command-line flags; later
 * wins, so flags > environment > file > defaults. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define CNND_VERSION "0.1.0"

/* T_ADDR_OFF: a numeric address or "off" (admin_listen) */
enum opt_type { T_INT, T_SIZE, T_COUNT, T_STR, T_ADDR, T_ADDR_OFF, T_ENUM };
enum origin { O_DEFAULT = 0, O_FILE, O_FLAG, O_ENV };

struct option {
    const char *name;
    const char *section;
    enum opt_type type;
    const char *def; /* default, as text: parsed like any other value */
    long long min, max;
    const char *choices; /* T_ENUM: "a|b|c", stored as the index */
    size_t offset;
    const char *help;
};

#define F(field) offsetof(struct config, field)
#define KIB 1024LL
#define MIB (1024LL * 1024)
#define GIB (1024LL * 1024 * 1024)

static const struct option OPTIONS[] = {
    {"listen", "server", T_ADDR, "0.0.0.0", 0, 0, NULL, F(listen),
     "address to listen on: numeric IPv4 or IPv6 (0.0.0.0 = all IPv4, :: = all)"},
    {"port", "server", T_INT, "8080", 0, 65535, NULL, F(port),
     "TCP port; 0 = a free port chosen by the kernel (logged as \"listening port=N\")"},
    {"threads", "server", T_INT, "0", 0, 256, NULL, F(threads),
     "HTTP threads (libmicrohttpd pool: parse, decode, reply); 0 = one per core"},
    {"connection_limit", "server", T_INT, "1024", 1, 1000000, NULL, F(connection_limit),
     "open connections at most; beyond it new ones are closed at once"},
    {"per_ip_limit", "server", T_INT, "256", 0, 1000000, NULL, F(per_ip_limit),
     "open connections per client address; 0 = no limit"},
    {"connection_timeout_s", "server", T_INT, "60", 0, 86400, NULL, F(connection_timeout_s),
     "close a connection idle (or stalled mid-request) this long; 0 = never"},
    {"request_timeout_ms", "server", T_INT, "10000", 0, 3600000, NULL, F(request_timeout_ms),
     "a request still queued after this long is answered 503, not computed; 0 = no limit"},
    {"drain_timeout_ms", "server", T_INT, "30000", 0, 3600000, NULL, F(drain_timeout_ms),
     "on SIGTERM/SIGINT, wait this long for requests in flight, then exit 1"},
    {"model_repository", "models", T_STR, "models/repository", 0, 0, NULL, F(model_repository),
     "folder of NAME/VERSION/model.cnn (+ optional NAME/config.ini)"},
    {"poll_interval_s", "models", T_INT, "0", 0, 86400, NULL, F(poll_interval_s),
     "re-read the repository every this many seconds; 0 = only on SIGHUP"},
    {"max_versions", "models", T_INT, "1", 1, 100, NULL, F(max_versions),
     "versions kept loaded per model, newest first (1 = only the live one, as Triton)"},
    {"max_batch_size", "batching", T_INT, "32", 1, 4096, NULL, F(max_batch_size),
     "images per forward pass"},
    {"max_queue_delay_us", "batching", T_INT, "2000", 0, 10000000, NULL, F(max_queue_delay_us),
     "how long a worker waits to fill a batch after its first image"},
    {"max_queue_size", "batching", T_INT, "1024", 1, 1000000, NULL, F(max_queue_size),
     "queued images per model version; beyond it requests get 503 + Retry-After at once"},
    {"instances", "batching", T_INT, "0", 0, 256, NULL, F(instances),
     "inference worker threads per model version; 0 = cores / blas_threads"},
    {"blas_threads", "batching", T_INT, "1", 1, 256, NULL, F(blas_threads),
     "BLAS threads per forward pass; instances x blas_threads <= cores"},
    {"split", "batching", T_ENUM, "auto", 0, 0, "auto|off", F(split),
     "auto: a batch that finds the queue short runs on all instances' cores, its layers split "
     "(blas_threads 1 only); off: one core per batch"},
    {"split_min_mflop", "batching", T_INT, "4", 0, 1000000, NULL, F(split_min_mflop),
     "with split auto, a batch below this many MFLOP (the model's per image x images) still runs "
     "on one core: on a tiny net waking the team costs more than it saves"},
    {"classify_max_body", "limits", T_SIZE, "8M", 1, GIB, NULL, F(classify_max_body),
     "largest body of POST .../classify (bytes; k, M, G suffixes = 1024^n)"},
    {"infer_max_body", "limits", T_SIZE, "64M", 1, 4 * GIB, NULL, F(infer_max_body),
     "largest body of POST /v2/.../infer (bytes)"},
    {"max_image_pixels", "limits", T_COUNT, "16M", 1, 1024 * MIB, NULL, F(max_image_pixels),
     "largest decoded image, width x height, checked before decoding"},
    {"max_json_depth", "limits", T_INT, "32", 2, 10000, NULL, F(max_json_depth),
     "deepest nesting of JSON arrays/objects, checked before parsing"},
    {"max_json_values", "limits", T_COUNT, "1M", 1, GIB, NULL, F(max_json_values),
     "most JSON values (numbers, strings, ...) in one body, checked before parsing"},
    {"max_multipart_parts", "limits", T_INT, "64", 1, 10000, NULL, F(max_multipart_parts),
     "most parts in a multipart/form-data body"},
    {"max_tensor_elements", "limits", T_COUNT, "16M", 1, 4 * GIB, NULL, F(max_tensor_elements),
     "most elements in one request tensor (input or output)"},
    {"max_batch_items", "limits", T_INT, "64", 1, 1000000, NULL, F(max_batch_items),
     "most images (or tensors) in one request; <= max_queue_size"},
    {"explain_max_concurrent", "limits", T_INT, "4", 1, 10000, NULL, F(explain_max_concurrent),
     "POST .../explain requests in flight at most; beyond it 429 + Retry-After at once"},
    {"explain_threads", "limits", T_INT, "1", 1, 64, NULL, F(explain_threads),
     "threads computing explanations (saliency maps), apart from the inference workers"},
    {"admin_listen", "admin", T_ADDR_OFF, "127.0.0.1", 0, 0, NULL, F(admin_listen),
     "admin listener address (jobs, model management); keep it on loopback; off = none"},
    {"admin_port", "admin", T_INT, "8081", 0, 65535, NULL, F(admin_port),
     "admin TCP port; 0 = a free port (logged as \"admin listening port=N\")"},
    {"admin_token_file", "admin", T_STR, "models/admin.token", 0, 0, NULL, F(admin_token_file),
     "bearer token file (mode 0600; made when missing); CNND_ADMIN_TOKEN overrides it"},
    {"data_root", "training", T_STR, "models/data", 0, 0, NULL, F(data_root),
     "datasets of fine-tune jobs and collected examples live under this folder (made at "
     "start when missing)"},
    {"max_jobs", "training", T_INT, "1", 1, 64, NULL, F(max_jobs),
     "fine-tune jobs running at once; max_jobs x blas_threads <= train_threads"},
    {"job_queue_size", "training", T_INT, "4", 0, 1000, NULL, F(job_queue_size),
     "jobs waiting for a free slot; beyond it POST .../finetune answers 409"},
    {"train_threads", "training", T_INT, "0", 0, 256, NULL, F(train_threads),
     "cores running jobs take together; each job splits its layers over train_threads / "
     "max_jobs / blas_threads threads; 0 = cores - 1 (or more to fit)"},
    {"train_nice", "training", T_INT, "10", 0, 19, NULL, F(train_nice),
     "nice value of job threads: inference wins the CPU when both want it"},
    {"max_examples", "training", T_COUNT, "10000", 1, 10000000, NULL, F(max_examples),
     "examples collected per model through POST .../examples"},
    {"example_max_bytes", "training", T_SIZE, "1M", 1, 64 * MIB, NULL, F(example_max_bytes),
     "largest example image upload (bytes)"},
    {"log_level", "log", T_ENUM, "info", 0, 0, "debug|info|warn|error", F(log_level),
     "least severe level logged"},
    {"log_format", "log", T_ENUM, "text", 0, 0, "text|json", F(log_format),
     "text: \"TIME LEVEL event key=value...\"; json: one object per line"},
};
#define N_OPTIONS ((int)(sizeof OPTIONS / sizeof OPTIONS[0]))
_Static_assert(sizeof OPTIONS / sizeof OPTIONS[0] <= CONFIG_MAX_OPTIONS, "grow origin arrays");

static const char *const SECTIONS[] = {"server", "models",   "batching", "limits",
                                       "admin",  "training", "log"};

static int fail(char *errbuf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *errbuf, size_t cap, const char *fmt, ...)
{
    if (errbuf && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Option by name; '-' counts as '_' so flags can be written --max-batch-size. */
static int find_option(const char *name, size_t len)
{
    for (int i = 0; i < N_OPTIONS; i++) {
        const char *o = OPTIONS[i].name;
        size_t k = 0;
        while (k < len && o[k] && (o[k] == name[k] || (o[k] == '_' && name[k] == '-')))
            k++;
        if (k == len && o[k] == '\0')
            return i;
    }
    return -1;
}

/* Integer with an optional k/m/g suffix (x1024^n) when `suffixes`; whole string. */
static int parse_number(const char *s, int suffixes, long long *out, const char **why)
{
    errno = 0;
    char *end;
    if (!isdigit((unsigned char)*s) && *s != '-') {
        *why = "not an integer";
        return -1;
    }
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE) {
        *why = "out of range";
        return -1;
    }
    long long mult = 1;
    if (suffixes && *end) {
        switch (tolower((unsigned char)*end)) {
        case 'k':
            mult = KIB;
            break;
        case 'm':
            mult = MIB;
            break;
        case 'g':
            mult = GIB;
            break;
        default:
            mult = 0;
        }
        if (mult)
            end++;
    }
    if (*end || end == s || mult == 0) {
        *why = suffixes ? "not an integer (optionally with a k, M or G suffix)" : "not an integer";
        return -1;
    }
    if (__builtin_mul_overflow(v, mult, out)) {
        *why = "out of range";
        return -1;
    }
    return 0;
}

static int set_value(struct config *c, int i, const char *value, const char *where, char *errbuf,
                     size_t cap)
{
    const struct option *o = &OPTIONS[i];
    char *field = (char *)c + o->offset;
    const char *why = NULL;
    long long v = 0;
    switch (o->type) {
    case T_INT:
    case T_SIZE:
    case T_COUNT:
        if (parse_number(value, o->type != T_INT, &v, &why) != 0)
            return fail(errbuf, cap, "%s: option %s: '%s' is %s", where, o->name, value, why);
        if (v < o->min || v > o->max)
            return fail(errbuf, cap, "%s: option %s: %s is outside %lld..%lld", where, o->name,
                        value, o->min, o->max);
        if (o->type == T_INT)
            *(int *)field = (int)v;
        else
            *(long long *)field = v;
        return 0;
    case T_ADDR_OFF:
        if (strcmp(value, CONFIG_OFF) == 0) {
            strcpy(field, value);
            return 0;
        }
        /* fall through */
    case T_ADDR: {
        unsigned char buf[16];
        if (inet_pton(AF_INET, value, buf) != 1 && inet_pton(AF_INET6, value, buf) != 1)
            return fail(errbuf, cap, "%s: option %s: '%s' is not a numeric IPv4 or IPv6 address%s",
                        where, o->name, value, o->type == T_ADDR_OFF ? " or off" : "");
    }
        /* fall through */
    case T_STR:
        if (strlen(value) >= CONFIG_STR_MAX)
            return fail(errbuf, cap, "%s: option %s: longer than %d characters", where, o->name,
                        CONFIG_STR_MAX - 1);
        if (o->type == T_STR && !*value)
            return fail(errbuf, cap, "%s: option %s: empty", where, o->name);
        strcpy(field, value);
        return 0;
    case T_ENUM: {
        const char *p = o->choices;
        size_t n = strlen(value);
        for (int k = 0; *p; k++) {
            size_t len = strcspn(p, "|");
            if (len == n && strncmp(p, value, n) == 0) {
                *(int *)field = k;
                return 0;
            }
            p += len + (p[len] == '|');
        }
        return fail(errbuf, cap, "%s: option %s: '%s' is not one of %s", where, o->name, value,
                    o->choices);
    }
    }
    return fail(errbuf, cap, "%s: option %s: bad type", where, o->name);
}

void config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_OPTIONS; i++) {
        int rc = set_value(c, i, OPTIONS[i].def, "default", NULL, 0);
        (void)rc; /* the table's defaults are valid; check_config verifies it */
    }
}

int config_set(struct config *c, const char *name, const char *value, const char *where,
               char *errbuf, size_t cap)
{
    int i = find_option(name, strlen(name));
    if (i < 0)
        return fail(errbuf, cap, "%s: option %s: unknown option", where, name);
    return set_value(c, i, value, where, errbuf, cap);
}

/* ---- INI file ------------------------------------------------------------------------ */

struct file_state {
    struct config *c;
    FILE *f;
    const char *path;
    int line;                     /* physical line last handed to inih */
    int overlong;                 /* first overlong line, or 0 */
    int max_line;                 /* inih's line buffer, as passed to read_line */
    int err_line;                 /* first line a handler call rejected, or 0 */
    int seen[CONFIG_MAX_OPTIONS]; /* line each option was set on */
    char *errbuf;
    size_t cap;
};

/* fgets for inih that counts lines and swallows the rest of an overlong one. */
static char *read_line(char *str, int num, void *stream)
{
    struct file_state *st = stream;
    if (!fgets(str, num, st->f))
        return NULL;
    st->line++;
    st->max_line = num;
    size_t n = strlen(str);
    if (n > 0 && str[n - 1] != '\n' && !feof(st->f)) {
        int ch;
        while ((ch = fgetc(st->f)) != EOF && ch != '\n')
            ;
        if (!st->overlong)
            st->overlong = st->line;
    }
    return str;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    struct file_state *st = user;
    if (st->err_line)
        return 1; /* keep the first error only; inih keeps going */
    char where[CONFIG_STR_MAX + 32];
    snprintf(where, sizeof where, "%s:%d", st->path, st->line);
    int i = find_option(name, strlen(name));
    int rc;
    if (i < 0 || strchr(name, '-')) {
        rc = fail(st->errbuf, st->cap, "%s: option %s: unknown option", where, name);
    } else if (*section && strcmp(section, OPTIONS[i].section) != 0) {
        int known = 0;
        for (size_t k = 0; k < sizeof SECTIONS / sizeof SECTIONS[0]; k++)
            known |= strcmp(section, SECTIONS[k]) == 0;
        rc = known ? fail(st->errbuf, st->cap, "%s: option %s: belongs in [%s], not [%s]", where,
                          name, OPTIONS[i].section, section)
                   : fail(st->errbuf, st->cap, "%s: option %s: unknown section [%s]", where, name,
                          section);
    } else if (st->seen[i]) {
        rc = fail(st->errbuf, st->cap, "%s: option %s: set twice (first on line %d)", where, name,
                  st->seen[i]);
    } else {
        rc = set_value(st->c, i, value, where, st->errbuf, st->cap);
        if (rc == 0) {
            st->seen[i] = st->line;
            st->c->origin_kind_[i] = O_FILE;
            st->c->origin_line_[i] = st->line;
        }
    }
    if (rc != 0)
        st->err_line = st->line;
    return rc == 0;
}

int config_load_file(struct config *c, const char *path, char *errbuf, size_t cap)
{
    struct file_state st = {.c = c, .path = path, .errbuf = errbuf, .cap = cap};
    st.f = fopen(path, "r");
    if (!st.f)
        return fail(errbuf, cap, "%s: cannot open: %s", path, strerror(errno));
    if (strlen(path) >= sizeof c->file_) {
        fclose(st.f);
        return fail(errbuf, cap, "%s: path too long", path);
    }
    snprintf(c->file_, sizeof c->file_, "%s", path);
    int first = ini_parse_stream(read_line, &st, on_pair, &st);
    int read_error = ferror(st.f);
    fclose(st.f);
    if (read_error)
        return fail(errbuf, cap, "%s: read error", path);
    /* The earliest problem wins: an overlong line, a line inih could not parse, or a bad
     * option on_pair reported (its message is already in errbuf). */
    int syntax = (first > 0 && first != st.err_line) ? first : 0;
    int lines[3] = {st.overlong, syntax, st.err_line}, best = 0;
    for (int k = 0; k < 3; k++)
        if (lines[k] && (!best || lines[k] < best))
            best = lines[k];
    if (!best)
        return 0;
    if (best == st.overlong)
        return fail(errbuf, cap, "%s:%d: line longer than %d characters", path, best,
                    st.max_line - 2);
    if (best == syntax)
        return fail(errbuf, cap,
                    "%s:%d: syntax error: expected 'name = value', '[section]' or a comment", path,
                    best);
    return -1;
}

/* ---- environment --------------------------------------------------------------------- */

int config_apply_env(struct config *c, char *const *envp, void (*warn)(const char *name),
                     char *errbuf, size_t cap)
{
    for (; envp && *envp; envp++) {
        const char *kv = *envp;
        if (strncmp(kv, "CNND_", 5) != 0)
            continue;
        if (strncmp(kv, "CNND_ADMIN_TOKEN=", 17) == 0)
            continue; /* the admin token (admin_auth.c), deliberately not an option */
        const char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        char name[64];
        size_t len = (size_t)(eq - kv) - 5;
        int i = -1;
        if (len < sizeof name) {
            for (size_t k = 0; k < len; k++)
                name[k] = (char)tolower((unsigned char)kv[5 + k]);
            name[len] = '\0';
            i = strchr(name, '-') ? -1 : find_option(name, len);
        }
        if (i < 0) {
            if (warn) {
                char var[80];
                snprintf(var, sizeof var, "%.*s", (int)(eq - kv), kv);
                warn(var);
            }
            continue;
        }
        char where[96];
        snprintf(where, sizeof where, "environment %.*s", (int)(eq - kv), kv);
        if (set_value(c, i, eq + 1, where, errbuf, cap) != 0)
            return -1;
        c->origin_kind_[i] = O_ENV;
    }
    return 0;
}

/* ---- command line -------------------------------------------------------------------- */

/* Finds --config (and --help/--version) before anything else is applied. */
static int scan_special(int argc, char **argv, const char **file, char *errbuf, size_t cap)
{
    for (int a = 1; a < argc; a++) {
        const char *s = argv[a];
        if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0)
            return CONFIG_HELP;
        if (strcmp(s, "--version") == 0 || strcmp(s, "-V") == 0)
            return CONFIG_VERSION;
        if (strcmp(s, "--config") == 0 || strcmp(s, "-c") == 0) {
            if (a + 1 >= argc)
                return fail(errbuf, cap, "command line: option --config: needs a value");
            *file = argv[++a];
        } else if (strncmp(s, "--config=", 9) == 0) {
            *file = s + 9;
        }
    }
    return CONFIG_OK;
}

static int apply_flags(struct config *c, int argc, char **argv, char *errbuf, size_t cap)
{
    for (int a = 1; a < argc; a++) {
        const char *s = argv[a];
        if (strcmp(s, "--config") == 0 || strcmp(s, "-c") == 0) {
            a++;
            continue;
        }
        if (strncmp(s, "--config=", 9) == 0)
            continue;
        if (strncmp(s, "--", 2) != 0)
            return fail(errbuf, cap, "command line: unexpected argument '%s'", s);
        const char *name = s + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int i = find_option(name, len);
        if (i < 0)
            return fail(errbuf, cap, "command line: option --%.*s: unknown option", (int)len, name);
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (a + 1 >= argc)
                return fail(errbuf, cap, "command line: option --%s: needs a value", name);
            value = argv[++a];
        }
        if (set_value(c, i, value, "command line", errbuf, cap) != 0)
            return -1;
        c->origin_kind_[i] = O_FLAG;
    }
    return 0;
}

/* ---- checks across options ------------------------------------------------------------ */

static void origin_of(const struct config *c, const char *name, char *buf, size_t cap)
{
    int i = find_option(name, strlen(name));
    switch (i < 0 ? O_DEFAULT : c->origin_kind_[i]) {
    case O_FILE:
        snprintf(buf, cap, "%s:%d", c->file_, c->origin_line_[i]);
        break;
    case O_FLAG:
        snprintf(buf, cap, "command line");
        break;
    case O_ENV: {
        char up[64];
        size_t k = 0;
        for (; name[k] && k + 1 < sizeof up; k++)
            up[k] = (char)toupper((unsigned char)name[k]);
        up[k] = '\0';
        snprintf(buf, cap, "environment CNND_%s", up);
        break;
    }
    default:
        snprintf(buf, cap, "default");
        break;
    }
}

int config_finish(struct config *c, int cores, char *errbuf, size_t cap)
{
    char where[CONFIG_STR_MAX + 32];
    if (cores < 1)
        cores = 1;
    if (c->threads == 0)
        c->threads = cores;
    if (c->instances == 0)
        c->instances = cores / c->blas_threads > 0 ? cores / c->blas_threads : 1;
    if ((long long)c->instances * c->blas_threads > cores) {
        const char *name = c->origin_kind_[find_option("instances", 9)] != O_DEFAULT
                               ? "instances"
                               : "blas_threads";
        origin_of(c, name, where, sizeof where);
        return fail(errbuf, cap,
                    "%s: option %s: instances (%d) x blas_threads (%d) exceeds the %d cores", where,
                    name, c->instances, c->blas_threads, cores);
    }
    if (c->connection_limit < c->threads) {
        origin_of(c, "connection_limit", where, sizeof where);
        return fail(errbuf, cap, "%s: option connection_limit: %d is below threads (%d)", where,
                    c->connection_limit, c->threads);
    }
    long long job_threads = (long long)c->max_jobs * c->blas_threads;
    if (c->train_threads == 0) /* auto: leave a core to inference, but fit max_jobs jobs */
        c->train_threads = (int)(job_threads > cores - 1 ? job_threads : cores - 1);
    if (job_threads > c->train_threads) {
        const char *name = "train_threads";
        origin_of(c, name, where, sizeof where);
        return fail(errbuf, cap,
                    "%s: option %s: max_jobs (%d) x blas_threads (%d) exceeds train_threads "
                    "(%d): each running job computes on blas_threads threads (OpenBLAS's "
                    "count is process-wide)",
                    where, name, c->max_jobs, c->blas_threads, c->train_threads);
    }
    if (c->max_batch_items > c->max_queue_size) {
        origin_of(c, "max_batch_items", where, sizeof where);
        return fail(errbuf, cap,
                    "%s: option max_batch_items: %d exceeds max_queue_size (%d); such "
                    "requests could never be queued",
                    where, c->max_batch_items, c->max_queue_size);
    }
    return 0;
}

int config_load(struct config *c, int argc, char **argv, char *const *envp, int cores,
                void (*warn)(const char *name), char *errbuf, size_t cap)
{
    config_defaults(c);
    const char *file = NULL;
    int rc = scan_special(argc, argv, &file, errbuf, cap);
    if (rc != CONFIG_OK)
        return rc;
    if (file && config_load_file(c, file, errbuf, cap) != 0)
        return CONFIG_ERROR;
    /* precedence: flags > environment > file > defaults (later wins) */
    if (config_apply_env(c, envp, warn, errbuf, cap) != 0)
        return CONFIG_ERROR;
    if (apply_flags(c, argc, argv, errbuf, cap) != 0)
        return CONFIG_ERROR;
    if (config_finish(c, cores, errbuf, cap) != 0)
        return CONFIG_ERROR;
    return CONFIG_OK;
}

/* ---- help and description ------------------------------------------------------------ */

void config_print_help(FILE *f)
{
    fprintf(f,
            "usage: cnnd [--config FILE] [--OPTION VALUE | --OPTION=VALUE]...\n"
            "       cnnd --help | --version\n"
            "cnnd %s: CNN image classification server (plain REST /v1 and KServe v2).\n\n"
            "Every option can be set in the INI file (under its [section]), as a flag\n"
            "(--name or --name-with-dashes) or as the variable CNND_NAME.  Precedence:\n"
            "flags > environment > file > defaults.  Sizes take k, M, G (x1024).\n"
            "A bad setting prints WHERE: option NAME: why and exits with status 2.\n",
            CNND_VERSION);
    const char *section = "";
    for (int i = 0; i < N_OPTIONS; i++) {
        const struct option *o = &OPTIONS[i];
        if (strcmp(section, o->section) != 0) {
            section = o->section;
            fprintf(f, "\n[%s]\n", section);
        }
        char range[80] = "";
        if (o->type == T_ENUM)
            snprintf(range, sizeof range, "; one of %s", o->choices);
        else if (o->type == T_INT || o->type == T_SIZE || o->type == T_COUNT)
            snprintf(range, sizeof range, "; %lld..%lld", o->min, o->max);
        fprintf(f, "  --%-22s %s\n  %-24s (default %s%s)\n", o->name, o->help, "", o->def, range);
    }
    fprintf(f, "\nSignals: SIGHUP re-reads the repository; SIGTERM/SIGINT drain and exit 0\n"
               "(a second one, or drain_timeout_ms running out, exits 1 at once).\n");
}

void config_describe(const struct config *c, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_OPTIONS && len < cap; i++) {
        const struct option *o = &OPTIONS[i];
        const char *field = (const char *)c + o->offset;
        char val[CONFIG_STR_MAX + 8];
        switch (o->type) {
        case T_INT:
            snprintf(val, sizeof val, "%d", *(const int *)field);
            break;
        case T_SIZE:
        case T_COUNT:
            snprintf(val, sizeof val, "%lld", *(const long long *)field);
            break;
        case T_STR:
        case T_ADDR:
        case T_ADDR_OFF:
            snprintf(val, sizeof val, "%s", field);
            break;
        case T_ENUM: {
            const char *p = o->choices;
            for (int k = *(const int *)field; k > 0 && strchr(p, '|'); k--)
                p = strchr(p, '|') + 1;
            snprintf(val, sizeof val, "%.*s", (int)strcspn(p, "|"), p);
            break;
        }
        }
        int n = snprintf(buf + len, cap - len, "%s%s=%s", i ? " " : "", o->name, val);
        if (n < 0)
            break;
        len += (size_t)n;
    }
}

int config_threads_per_job(const struct config *c)
{
    int n = c->train_threads / c->max_jobs / c->blas_threads;
    return n > 1 ? n : 1;
}

const char *config_version(void)
{
    return CNND_VERSION;
}

int config_admin_enabled(const struct config *c)
{
    return strcmp(c->admin_listen, CONFIG_OFF) != 0;
}
