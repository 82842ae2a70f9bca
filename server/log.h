/* Logging: one line per event to stderr, "ts level event key=value ..." as text, or one
 * JSON object per line ({"ts":..., "level":..., "msg":"event key=value ..."}).
 * Thread-safe (one write(2) per line); never logs secrets. */
#ifndef LOG_H
#define LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Call once at start, before threads. */
void log_setup(enum log_level min_level, int json);
/* Parses "debug", "info", "warn", "error"; -1 when unknown. */
int log_level_parse(const char *s);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logged at "info" whatever the level set: the lifecycle lines tools wait for ("listening
 * port=N", "draining", "stopped"). */
void log_always(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
