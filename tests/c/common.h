/* Shared helpers of the C tests: checks that count failures, temp store directories. */
#ifndef MQLITE_TEST_COMMON_H
#define MQLITE_TEST_COMMON_H

#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqlite.h"

static int g_checks = 0;
static int g_failures = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        g_checks++;                                                                  \
        if (!(cond)) {                                                               \
            g_failures++;                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* Expects `expr` to return status `want`; prints the error message when it does not. */
#define CHECK_STATUS(want, expr)                                                              \
    do {                                                                                      \
        mqlite_error *ERR_ = NULL;                                                            \
        mqlite_error **ERR = &ERR_;                                                           \
        (void)ERR;                                                                            \
        mqlite_status s_ = (expr);                                                            \
        g_checks++;                                                                           \
        if (s_ != (mqlite_status)(want)) {                                                    \
            g_failures++;                                                                     \
            fprintf(stderr, "%s:%d: %s returned %s, want %s\n", __FILE__, __LINE__, #expr,    \
                    mqlite_status_str(s_), mqlite_status_str(want));                          \
        } else if (s_ != MQLITE_OK && ERR_ != NULL && mqlite_error_status(ERR_) != s_) {      \
            g_failures++;                                                                     \
            fprintf(stderr, "%s:%d: %s: error object has status %s\n", __FILE__, __LINE__,    \
                    #expr, mqlite_status_str(mqlite_error_status(ERR_)));                     \
        }                                                                                     \
        mqlite_error_free(ERR_);                                                              \
    } while (0)

/* Calls that must succeed; `ERR` is the error out-pointer to pass inside. */
#define OK(expr)                                                                           \
    do {                                                                                   \
        mqlite_error *ERR_ = NULL;                                                         \
        mqlite_error **ERR = &ERR_;                                                        \
        mqlite_status s_ = (expr);                                                         \
        g_checks++;                                                                        \
        if (s_ != MQLITE_OK) {                                                             \
            g_failures++;                                                                  \
            fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #expr,       \
                    mqlite_status_str(s_), mqlite_error_message(ERR_));                    \
        }                                                                                  \
        mqlite_error_free(ERR_);                                                           \
        (void)ERR;                                                                         \
    } while (0)

#define S(str) (str), strlen(str)

/* A fresh directory under $TMPDIR (or /tmp); the caller frees the string. */
static char *temp_dir(void) {
    const char *base = getenv("TMPDIR");
    char *path = malloc(4096);
    snprintf(path, 4096, "%s/mqlite-ctest-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path)) {
        perror("mkdtemp");
        exit(2);
    }
    return path;
}

static void remove_dir(char *path) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
    free(path);
}

static mqlite_store *open_store(const char *dir, const mqlite_store_options *opts) {
    mqlite_store *s = NULL;
    mqlite_error *err = NULL;
    if (mqlite_store_open(dir, strlen(dir), opts, &s, &err) != MQLITE_OK) {
        fprintf(stderr, "open %s: %s\n", dir, mqlite_error_message(err));
        mqlite_error_free(err);
        exit(2);
    }
    return s;
}

static mqlite_queue *open_queue(mqlite_store *s, const char *name) {
    mqlite_queue *q = NULL;
    mqlite_error *err = NULL;
    if (mqlite_store_queue(s, name, strlen(name), &q, &err) != MQLITE_OK) {
        fprintf(stderr, "queue %s: %s\n", name, mqlite_error_message(err));
        mqlite_error_free(err);
        exit(2);
    }
    return q;
}

static int finish(const char *name) {
    printf("%s: %d checks, %d failed\n", name, g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}

#endif
