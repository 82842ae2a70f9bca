/* The dashboard's static files (server/www/), compiled into cnnd from memory: the Makefile
 * turns every file of that folder into a byte array of build/gen/www_files.c (no other build
 * step; editing a file and running make is enough). */
#ifndef WWW_H
#define WWW_H

#include <stddef.h>

struct www_file {
    const char *name; /* the file name, e.g. "app.js" */
    const unsigned char *data;
    size_t len;
};

/* Every file, ended by an entry whose name is NULL. */
extern const struct www_file www_files[];

#endif
