/* Config suite: defaults (the values the daemon issue and docs promise, written out here),
 * the INI file, flags overriding the file, CNND_* variables overriding both, and every error
 * path (bad value, unknown key or section, malformed or overlong line) returning the
 * "WHERE: option NAME: why" message instead of exiting. */
#include "config.h"
#include "log.h"

#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024LL * 1024)

static char errbuf[CONFIG_ERR_MAX];

/* Writes text to a fresh temporary file; returns its path (static buffer per slot). */
static const char *write_conf(int slot, const char *text)
{
    static char paths[4][64];
    snprintf(paths[slot], sizeof paths[slot], "/tmp/check_config_%d_%d.conf", (int)getpid(), slot);
    FILE *f = fopen(paths[slot], "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return paths[slot];
}

/* Loads text as a config file into c (after defaults); returns config_load_file's result. */
static int load_text(struct config *c, const char *text)
{
    config_defaults(c);
    errbuf[0] = '\0';
    int rc = config_load_file(c, write_conf(0, text), errbuf, sizeof errbuf);
    unlink(write_conf(0, ""));
    return rc;
}

/* errbuf must start with "<tmpfile>:<line>: " and contain `what`. */
static void expect_error_at(int line, const char *what)
{
    char prefix[96];
    snprintf(prefix, sizeof prefix, "/tmp/check_config_%d_0.conf:%d: ", (int)getpid(), line);
    ck_assert_msg(strncmp(errbuf, prefix, strlen(prefix)) == 0, "'%s' does not start with '%s'",
                  errbuf, prefix);
    ck_assert_msg(strstr(errbuf, what) != NULL, "'%s' lacks '%s'", errbuf, what);
}

START_TEST(test_defaults_match_documented_values)
{
    struct config c;
    config_defaults(&c);
    ck_assert_str_eq(c.listen, "0.0.0.0");
    ck_assert_int_eq(c.port, 8080);
    ck_assert_int_eq(c.threads, 0);
    ck_assert_str_eq(c.model_repository, "models/repository");
    ck_assert_int_eq(c.poll_interval_s, 0);
    ck_assert_int_eq(c.max_batch_size, 32);
    ck_assert_int_eq(c.max_queue_delay_us, 2000);
    ck_assert_int_eq(c.max_queue_size, 1024);
    ck_assert_int_eq(c.instances, 0);
    ck_assert_int_eq(c.blas_threads, 1);
    ck_assert_int_eq(c.split, 0); /* auto */
    ck_assert(c.classify_max_body == 8 * MIB);
    ck_assert(c.infer_max_body == 64 * MIB);
    ck_assert(c.max_image_pixels == 16 * MIB);
    ck_assert_int_eq(c.max_json_depth, 32);
    ck_assert(c.max_json_values == 1 * MIB);
    ck_assert_int_eq(c.max_multipart_parts, 64);
    ck_assert(c.max_tensor_elements == 16 * MIB);
    ck_assert_int_eq(c.max_batch_items, 64);
    ck_assert_int_eq(c.explain_max_concurrent, 4);
    ck_assert_int_eq(c.explain_threads, 1);
    ck_assert_int_eq(c.request_timeout_ms, 10000);
    ck_assert_int_eq(c.drain_timeout_ms, 30000);
    ck_assert_int_eq(c.connection_limit, 1024);
    ck_assert_int_eq(c.per_ip_limit, 256);
    ck_assert_int_eq(c.connection_timeout_s, 60);
    ck_assert_int_eq(c.max_versions, 1);
    ck_assert_int_eq(c.log_level, LOG_INFO);
    ck_assert_int_eq(c.log_format, CONFIG_LOG_TEXT);
    ck_assert_str_eq(c.admin_listen, "127.0.0.1");
    ck_assert_int_eq(c.admin_port, 8081);
    ck_assert_str_eq(c.admin_token_file, "models/admin.token");
    ck_assert_str_eq(c.data_root, "models/data");
    ck_assert_int_eq(c.max_jobs, 1);
    ck_assert_int_eq(c.job_queue_size, 4);
    ck_assert_int_eq(c.train_threads, 0);
    ck_assert_int_eq(c.train_nice, 10);
    ck_assert(c.max_examples == 10000);
    ck_assert(c.example_max_bytes == 1 * MIB);
}
END_TEST

START_TEST(test_finish_resolves_auto_threads_and_instances)
{
    struct config c;
    config_defaults(&c);
    ck_assert_int_eq(config_finish(&c, 6, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(c.threads, 6);
    ck_assert_int_eq(c.instances, 6); /* blas_threads 1 */
    config_defaults(&c);
    c.blas_threads = 4;
    ck_assert_int_eq(config_finish(&c, 6, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(c.instances, 1); /* 6 / 4 */
    config_defaults(&c);
    c.blas_threads = 8; /* more than the cores: 1 instance, 8 > 6 is refused */
    ck_assert_int_eq(config_finish(&c, 6, errbuf, sizeof errbuf), -1);
    ck_assert_ptr_nonnull(strstr(errbuf, "exceeds the 6 cores"));
}
END_TEST

/* train_threads: auto leaves a core to inference but always fits max_jobs x blas_threads;
 * an explicit value that does not fit is refused, naming where it was set. */
START_TEST(test_finish_resolves_train_threads_and_checks_the_job_budget)
{
    struct config c;
    config_defaults(&c);
    ck_assert_int_eq(config_finish(&c, 4, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(c.train_threads, 3);
    config_defaults(&c);
    ck_assert_int_eq(config_finish(&c, 1, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(c.train_threads, 1);
    config_defaults(&c);
    c.instances = 1;
    c.blas_threads = 2;
    ck_assert_int_eq(config_finish(&c, 2, errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(c.train_threads, 2); /* one job needs blas_threads */
    char *argv[] = {"cnnd", "--max-jobs", "3", "--train-threads", "2", NULL};
    ck_assert_int_eq(config_load(&c, 5, argv, NULL, 8, NULL, errbuf, sizeof errbuf),
                     CONFIG_ERROR);
    ck_assert_msg(strstr(errbuf, "command line: option train_threads: max_jobs (3) x "
                                 "blas_threads (1) exceeds train_threads (2)") != NULL,
                  "%s", errbuf);
    char *ok[] = {"cnnd", "--max-jobs", "2", "--train-threads", "2", NULL};
    ck_assert_int_eq(config_load(&c, 5, ok, NULL, 8, NULL, errbuf, sizeof errbuf), CONFIG_OK);
    ck_assert_int_eq(config_threads_per_job(&c), 1);
    /* a job's trainer splits its layers over its share: train_threads / max_jobs / blas */
    config_defaults(&c);
    ck_assert_int_eq(config_finish(&c, 8, errbuf, sizeof errbuf), 0); /* 7 for 1 job */
    ck_assert_int_eq(config_threads_per_job(&c), 7);
    char *two[] = {"cnnd", "--max-jobs", "2", "--blas-threads", "2", "--instances", "2", NULL};
    ck_assert_int_eq(config_load(&c, 7, two, NULL, 8, NULL, errbuf, sizeof errbuf), CONFIG_OK);
    ck_assert_int_eq(c.train_threads, 7);
    ck_assert_int_eq(config_threads_per_job(&c), 1); /* 7 / 2 / 2, never 0 */
}
END_TEST

START_TEST(test_file_sets_options_in_sections_with_comments)
{
    struct config c;
    int rc = load_text(&c, "; leading comment\n"
                           "# another comment\n"
                           "port = 9090\n"
                           "[server]\n"
                           "listen = 127.0.0.1   ; inline comment\n"
                           "threads=3\n"
                           "\n"
                           "[models]\n"
                           "model_repository = /srv/models\n"
                           "[batching]\n"
                           "max_batch_size = 8\n"
                           "[limits]\n"
                           "classify_max_body = 2M\n"
                           "infer_max_body = 512k\n"
                           "max_tensor_elements = 3G\n"
                           "[log]\n"
                           "log_level = debug\n"
                           "log_format = json\n");
    ck_assert_msg(rc == 0, "%s", errbuf);
    ck_assert_int_eq(c.port, 9090);
    ck_assert_str_eq(c.listen, "127.0.0.1");
    ck_assert_int_eq(c.threads, 3);
    ck_assert_str_eq(c.model_repository, "/srv/models");
    ck_assert_int_eq(c.max_batch_size, 8);
    ck_assert(c.classify_max_body == 2 * MIB);
    ck_assert(c.infer_max_body == 512 * 1024);
    ck_assert(c.max_tensor_elements == 3 * 1024 * MIB);
    ck_assert_int_eq(c.log_level, LOG_DEBUG);
    ck_assert_int_eq(c.log_format, CONFIG_LOG_JSON);
    ck_assert_int_eq(c.max_queue_size, 1024); /* untouched default */
}
END_TEST

START_TEST(test_file_errors_name_file_line_and_option)
{
    struct config c;
    ck_assert_int_eq(load_text(&c, "[server]\nport = 70000\n"), -1);
    expect_error_at(2, "option port: 70000 is outside 0..65535");
    ck_assert_int_eq(load_text(&c, "[server]\n\nport = 80a\n"), -1);
    expect_error_at(3, "option port: '80a' is not an integer");
    ck_assert_int_eq(load_text(&c, "# x\nnosuch = 1\n"), -1);
    expect_error_at(2, "option nosuch: unknown option");
    ck_assert_int_eq(load_text(&c, "[server]\nmax-batch-size = 1\n"), -1);
    expect_error_at(2, "unknown option"); /* dashes are for flags only */
    ck_assert_int_eq(load_text(&c, "[batching]\nport = 1\n"), -1);
    expect_error_at(2, "option port: belongs in [server], not [batching]");
    ck_assert_int_eq(load_text(&c, "[nosuch]\nport = 1\n"), -1);
    expect_error_at(2, "option port: unknown section [nosuch]");
    ck_assert_int_eq(load_text(&c, "port = 1\n[server]\nport = 2\n"), -1);
    expect_error_at(3, "option port: set twice (first on line 1)");
    ck_assert_int_eq(load_text(&c, "[log]\nlog_format = xml\n"), -1);
    expect_error_at(2, "option log_format: 'xml' is not one of text|json");
    ck_assert_int_eq(load_text(&c, "[limits]\nclassify_max_body = 12x\n"), -1);
    expect_error_at(2, "option classify_max_body:");
    ck_assert_int_eq(load_text(&c, "[limits]\ninfer_max_body = 99999999999999999999G\n"), -1);
    expect_error_at(2, "option infer_max_body:");
    ck_assert_int_eq(load_text(&c, "[limits]\nmax_tensor_elements = 9000000000G\n"), -1);
    expect_error_at(2, "out of range"); /* the suffix multiply overflows */
    ck_assert_int_eq(load_text(&c, "[server]\nlisten = localhost\n"), -1);
    expect_error_at(2, "option listen: 'localhost' is not a numeric IPv4 or IPv6 address");
    ck_assert_int_eq(load_text(&c, "[models]\nmodel_repository =\n"), -1);
    expect_error_at(2, "option model_repository: empty");
}
END_TEST

START_TEST(test_file_syntax_errors_and_overlong_lines)
{
    struct config c;
    ck_assert_int_eq(load_text(&c, "[server]\nport 8080\n"), -1);
    expect_error_at(2, "syntax error");
    ck_assert_int_eq(load_text(&c, "[server\nport = 1\n"), -1);
    expect_error_at(1, "syntax error");
    /* A syntax error before a bad value: the earlier line is reported. */
    ck_assert_int_eq(load_text(&c, "garbage\nport = -5\n"), -1);
    expect_error_at(1, "syntax error");
    /* A bad value before a syntax error: the bad value is reported. */
    ck_assert_int_eq(load_text(&c, "port = -5\ngarbage\n"), -1);
    expect_error_at(1, "option port");
    char text[1200];
    int n = snprintf(text, sizeof text, "[models]\nmodel_repository = ");
    memset(text + n, 'a', 600);
    strcpy(text + n + 600, "\n[server]\nport = 1\n");
    ck_assert_int_eq(load_text(&c, text), -1);
    expect_error_at(2, "line longer than");
    /* The rest of the overlong line was not read as lines of its own: port below parsed. */
    ck_assert_int_eq(c.port, 1);
}
END_TEST

START_TEST(test_missing_file_is_an_error)
{
    struct config c;
    config_defaults(&c);
    ck_assert_int_eq(config_load_file(&c, "/nonexistent/cnnd.conf", errbuf, sizeof errbuf), -1);
    ck_assert_ptr_nonnull(strstr(errbuf, "/nonexistent/cnnd.conf: cannot open"));
}
END_TEST

static int warned;
static void count_warning(const char *name)
{
    (void)name;
    warned++;
}

START_TEST(test_precedence_flags_over_env_over_file)
{
    const char *path = write_conf(1, "[server]\nport = 9000\nthreads = 2\n"
                                     "[batching]\nmax_batch_size = 16\nmax_queue_size = 100\n");
    char *argv[] = {"cnnd", "--config",           (char *)path,           "--port",
                    "9001", "--max-batch-size=4", "--max_queue_delay_us", "5",
                    NULL};
    char *env[] = {"HOME=/root", "CNND_PORT=9002", "CNND_MAX_QUEUE_SIZE=200",
                   "CNND_SOMETHING_ELSE=1", NULL};
    struct config c;
    warned = 0;
    int rc = config_load(&c, 8, argv, env, 4, count_warning, errbuf, sizeof errbuf);
    unlink(path);
    ck_assert_msg(rc == CONFIG_OK, "%s", errbuf);
    ck_assert_int_eq(c.port, 9001);            /* file 9000 < env 9002 < flag 9001 */
    ck_assert_int_eq(c.threads, 2);            /* file only */
    ck_assert_int_eq(c.max_batch_size, 4);     /* flag over file */
    ck_assert_int_eq(c.max_queue_delay_us, 5); /* flag only */
    ck_assert_int_eq(c.max_queue_size, 200);   /* env over file */
    ck_assert_int_eq(c.instances, 4);          /* auto: 4 cores / 1 BLAS thread */
    ck_assert_int_eq(warned, 1);               /* CNND_SOMETHING_ELSE */
}
END_TEST

/* Each pair on its own: flag > env, flag > file, env > file, and the origin named in an
 * error is the source that won. */
START_TEST(test_precedence_each_pair_and_the_winner_is_named)
{
    const char *path = write_conf(1, "[server]\nport = 9000\n[batching]\nmax_queue_size = 100\n");
    char *argv_fe[] = {"cnnd", "--port", "9001", NULL};
    char *env_fe[] = {"CNND_PORT=9002", NULL};
    struct config c;
    ck_assert_int_eq(config_load(&c, 3, argv_fe, env_fe, 4, NULL, errbuf, sizeof errbuf),
                     CONFIG_OK);
    ck_assert_int_eq(c.port, 9001); /* flag over env */
    char *argv_ff[] = {"cnnd", "--config", (char *)path, "--port=9003", NULL};
    ck_assert_int_eq(config_load(&c, 4, argv_ff, NULL, 4, NULL, errbuf, sizeof errbuf), CONFIG_OK);
    ck_assert_int_eq(c.port, 9003); /* flag over file */
    char *argv_f[] = {"cnnd", "--config", (char *)path, NULL};
    char *env_q[] = {"CNND_MAX_QUEUE_SIZE=300", NULL};
    ck_assert_int_eq(config_load(&c, 3, argv_f, env_q, 4, NULL, errbuf, sizeof errbuf), CONFIG_OK);
    ck_assert_int_eq(c.max_queue_size, 300); /* env over file */
    ck_assert_int_eq(c.port, 9000);          /* file over default */
    /* max_batch_items 2000 > max_queue_size: the error names the source that won */
    char *argv_b[] = {"cnnd", "--max-batch-items", "50", NULL};
    char *env_b[] = {"CNND_MAX_BATCH_ITEMS=2000", NULL};
    ck_assert_int_eq(config_load(&c, 3, argv_b, env_b, 4, NULL, errbuf, sizeof errbuf), CONFIG_OK);
    ck_assert_int_eq(c.max_batch_items, 50);
    char *argv_e[] = {"cnnd", NULL};
    ck_assert_int_eq(config_load(&c, 1, argv_e, env_b, 4, NULL, errbuf, sizeof errbuf),
                     CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(errbuf, "environment CNND_MAX_BATCH_ITEMS"));
    unlink(path);
    char *help = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&help, &len);
    config_print_help(f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(help, "flags > environment > file > defaults"));
    free(help);
    char conf[4096] = "";
    FILE *cf = fopen("config/cnnd.conf", "r");
    ck_assert_ptr_nonnull(cf);
    size_t got = fread(conf, 1, sizeof conf - 1, cf);
    fclose(cf);
    conf[got] = '\0';
    ck_assert_ptr_nonnull(strstr(conf, "Precedence: flags > environment > this file >"));
}
END_TEST

START_TEST(test_flag_and_env_errors)
{
    struct config c;
    char *a1[] = {"cnnd", "--nosuch", "1", NULL};
    ck_assert_int_eq(config_load(&c, 3, a1, NULL, 2, NULL, errbuf, sizeof errbuf), CONFIG_ERROR);
    ck_assert_str_eq(errbuf, "command line: option --nosuch: unknown option");
    char *a2[] = {"cnnd", "--port", NULL};
    ck_assert_int_eq(config_load(&c, 2, a2, NULL, 2, NULL, errbuf, sizeof errbuf), CONFIG_ERROR);
    ck_assert_str_eq(errbuf, "command line: option --port: needs a value");
    char *a3[] = {"cnnd", "stray", NULL};
    ck_assert_int_eq(config_load(&c, 2, a3, NULL, 2, NULL, errbuf, sizeof errbuf), CONFIG_ERROR);
    ck_assert_str_eq(errbuf, "command line: unexpected argument 'stray'");
    char *a4[] = {"cnnd", "--port=-1", NULL};
    ck_assert_int_eq(config_load(&c, 2, a4, NULL, 2, NULL, errbuf, sizeof errbuf), CONFIG_ERROR);
    ck_assert_str_eq(errbuf, "command line: option port: -1 is outside 0..65535");
    char *a5[] = {"cnnd", NULL};
    char *e5[] = {"CNND_LOG_LEVEL=loud", NULL};
    ck_assert_int_eq(config_load(&c, 1, a5, e5, 2, NULL, errbuf, sizeof errbuf), CONFIG_ERROR);
    ck_assert_str_eq(errbuf, "environment CNND_LOG_LEVEL: option log_level: 'loud' is not "
                             "one of debug|info|warn|error");
    char *a6[] = {"cnnd", "--config", "/nonexistent.conf", NULL};
    ck_assert_int_eq(config_load(&c, 3, a6, NULL, 2, NULL, errbuf, sizeof errbuf), CONFIG_ERROR);
    char *a7[] = {"cnnd", "--port", "1", "--help", NULL};
    ck_assert_int_eq(config_load(&c, 4, a7, NULL, 2, NULL, errbuf, sizeof errbuf), CONFIG_HELP);
    char *a8[] = {"cnnd", "--version", NULL};
    ck_assert_int_eq(config_load(&c, 2, a8, NULL, 2, NULL, errbuf, sizeof errbuf), CONFIG_VERSION);
}
END_TEST

START_TEST(test_cross_option_errors_name_where_the_option_was_set)
{
    const char *path = write_conf(2, "[batching]\n\ninstances = 3\n");
    char *argv[] = {"cnnd", "-c", (char *)path, NULL};
    struct config c;
    int rc = config_load(&c, 3, argv, NULL, 2, NULL, errbuf, sizeof errbuf);
    ck_assert_int_eq(rc, CONFIG_ERROR);
    char want[200];
    snprintf(want, sizeof want,
             "%s:3: option instances: instances (3) x blas_threads (1) exceeds the 2 cores", path);
    ck_assert_str_eq(errbuf, want);
    char *env[] = {"CNND_MAX_BATCH_ITEMS=2000", NULL};
    rc = config_load(&c, 1, argv, env, 2, NULL, errbuf, sizeof errbuf);
    ck_assert_int_eq(rc, CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(errbuf, "environment CNND_MAX_BATCH_ITEMS: option "
                                         "max_batch_items: 2000 exceeds max_queue_size"));
    unlink(path);
}
END_TEST

/* admin_listen = off (file, flag or CNND_ADMIN_LISTEN) turns the admin listener off; "off"
 * is no word for the inference listener, and near-misses are refused. */
START_TEST(test_admin_listen_off_disables_the_admin_listener)
{
    struct config c;
    config_defaults(&c);
    ck_assert_int_eq(config_admin_enabled(&c), 1);
    ck_assert_int_eq(config_set(&c, "admin_listen", "off", "test", errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(config_admin_enabled(&c), 0);
    ck_assert_int_eq(config_set(&c, "admin_listen", "::1", "test", errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(config_admin_enabled(&c), 1);
    ck_assert_int_eq(config_set(&c, "admin_listen", "Off", "test", errbuf, sizeof errbuf), -1);
    ck_assert_str_eq(errbuf, "test: option admin_listen: 'Off' is not a numeric IPv4 or IPv6 "
                             "address or off");
    ck_assert_int_eq(config_set(&c, "listen", "off", "test", errbuf, sizeof errbuf), -1);
    ck_assert_str_eq(errbuf, "test: option listen: 'off' is not a numeric IPv4 or IPv6 address");
    char *argv[] = {"cnnd", "--admin-listen", "off", NULL};
    ck_assert_int_eq(config_load(&c, 3, argv, NULL, 2, NULL, errbuf, sizeof errbuf), CONFIG_OK);
    ck_assert_int_eq(config_admin_enabled(&c), 0);
    char *a1[] = {"cnnd", NULL};
    char *env[] = {"CNND_ADMIN_LISTEN=off", NULL};
    ck_assert_int_eq(config_load(&c, 1, a1, env, 2, NULL, errbuf, sizeof errbuf), CONFIG_OK);
    ck_assert_int_eq(config_admin_enabled(&c), 0);
    char desc[4096];
    config_describe(&c, desc, sizeof desc);
    ck_assert_ptr_nonnull(strstr(desc, "admin_listen=off"));
}
END_TEST

START_TEST(test_help_lists_every_option_with_its_default)
{
    static const char *const want[][2] = {
        {"listen", "0.0.0.0"},
        {"port", "8080"},
        {"threads", "0"},
        {"connection_limit", "1024"},
        {"per_ip_limit", "256"},
        {"connection_timeout_s", "60"},
        {"request_timeout_ms", "10000"},
        {"drain_timeout_ms", "30000"},
        {"model_repository", "models/repository"},
        {"poll_interval_s", "0"},
        {"max_versions", "1"},
        {"max_batch_size", "32"},
        {"max_queue_delay_us", "2000"},
        {"max_queue_size", "1024"},
        {"instances", "0"},
        {"blas_threads", "1"},
        {"split", "auto"},
        {"split_min_mflop", "4"},
        {"classify_max_body", "8M"},
        {"infer_max_body", "64M"},
        {"max_image_pixels", "16M"},
        {"max_json_depth", "32"},
        {"max_json_values", "1M"},
        {"max_multipart_parts", "64"},
        {"max_tensor_elements", "16M"},
        {"max_batch_items", "64"},
        {"explain_max_concurrent", "4"},
        {"explain_threads", "1"},
        {"admin_listen", "127.0.0.1"},
        {"admin_port", "8081"},
        {"admin_token_file", "models/admin.token"},
        {"data_root", "models/data"},
        {"max_jobs", "1"},
        {"job_queue_size", "4"},
        {"train_threads", "0"},
        {"train_nice", "10"},
        {"max_examples", "10000"},
        {"example_max_bytes", "1M"},
        {"log_level", "info"},
        {"log_format", "text"},
    };
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(f);
    config_print_help(f);
    fclose(f);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char flag[64], def[64];
        snprintf(flag, sizeof flag, "--%s ", want[i][0]);
        snprintf(def, sizeof def, "(default %s", want[i][1]);
        const char *at = strstr(text, flag);
        ck_assert_msg(at != NULL, "--help lacks %s", flag);
        const char *d = strstr(at, def);
        const char *next = strstr(at + 1, "\n  --");
        ck_assert_msg(d && (!next || d < next), "--help: %s without '%s'", flag, def);
    }
    /* and no option beyond those */
    int count = 0;
    for (const char *p = text; (p = strstr(p, "\n  --")) != NULL; p++)
        count++;
    ck_assert_int_eq(count, (int)(sizeof want / sizeof want[0]));
    free(text);
}
END_TEST

START_TEST(test_describe_round_trips_through_config_set)
{
    struct config a, b;
    config_defaults(&a);
    ck_assert_int_eq(config_set(&a, "port", "1234", "test", errbuf, sizeof errbuf), 0);
    ck_assert_int_eq(config_set(&a, "log_format", "json", "test", errbuf, sizeof errbuf), 0);
    char desc[4096];
    config_describe(&a, desc, sizeof desc);
    ck_assert_ptr_nonnull(strstr(desc, "port=1234"));
    ck_assert_ptr_nonnull(strstr(desc, "log_format=json"));
    /* Feeding every "name=value" back gives the same settings. */
    config_defaults(&b);
    char *save, *tok = strtok_r(desc, " ", &save);
    for (; tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        ck_assert_ptr_nonnull(eq);
        *eq = '\0';
        ck_assert_msg(config_set(&b, tok, eq + 1, "test", errbuf, sizeof errbuf) == 0, "%s",
                      errbuf);
    }
    ck_assert_int_eq(b.port, 1234);
    ck_assert_int_eq(b.log_format, CONFIG_LOG_JSON);
    ck_assert(b.infer_max_body == a.infer_max_body);
    ck_assert_str_eq(b.model_repository, a.model_repository);
}
END_TEST

/* The shipped config/cnnd.conf sets every option, each to its default (run from the repo
 * root, as make does). */
START_TEST(test_shipped_conf_lists_every_option_at_its_default)
{
    struct config from_file, defaults;
    config_defaults(&defaults);
    config_defaults(&from_file);
    int rc = config_load_file(&from_file, "config/cnnd.conf", errbuf, sizeof errbuf);
    ck_assert_msg(rc == 0, "%s", errbuf);
    /* every option appears as a key: describe() lists them all by name */
    char desc[4096];
    config_describe(&defaults, desc, sizeof desc);
    FILE *f = fopen("config/cnnd.conf", "r");
    ck_assert_ptr_nonnull(f);
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    char *save, *tok = strtok_r(desc, " ", &save);
    int options = 0;
    for (; tok; tok = strtok_r(NULL, " ", &save), options++) {
        *strchr(tok, '=') = '\0';
        char key[80];
        snprintf(key, sizeof key, "\n%s = ", tok);
        ck_assert_msg(strstr(text, key) != NULL, "config/cnnd.conf does not set %s", tok);
    }
    ck_assert_int_ge(options, 26);
    /* and the values are the defaults (compare every field but the origin bookkeeping) */
    ck_assert_int_eq(memcmp(&from_file, &defaults, offsetof(struct config, file_)), 0);
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_defaults_match_documented_values);
    tcase_add_test(tc, test_finish_resolves_auto_threads_and_instances);
    tcase_add_test(tc, test_finish_resolves_train_threads_and_checks_the_job_budget);
    tcase_add_test(tc, test_file_sets_options_in_sections_with_comments);
    tcase_add_test(tc, test_file_errors_name_file_line_and_option);
    tcase_add_test(tc, test_file_syntax_errors_and_overlong_lines);
    tcase_add_test(tc, test_missing_file_is_an_error);
    tcase_add_test(tc, test_precedence_flags_over_env_over_file);
    tcase_add_test(tc, test_precedence_each_pair_and_the_winner_is_named);
    tcase_add_test(tc, test_flag_and_env_errors);
    tcase_add_test(tc, test_cross_option_errors_name_where_the_option_was_set);
    tcase_add_test(tc, test_help_lists_every_option_with_its_default);
    tcase_add_test(tc, test_describe_round_trips_through_config_set);
    tcase_add_test(tc, test_shipped_conf_lists_every_option_at_its_default);
    tcase_add_test(tc, test_admin_listen_off_disables_the_admin_listener);
    suite_add_tcase(s, tc);
    return s;
}
