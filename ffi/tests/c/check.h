/* Check macros shared by the C tests: count passes and failures, print what failed with the
 * library's last error, and let main() end with "N passed, N failed". */
#ifndef REPLICORE_TEST_CHECK_H
#define REPLICORE_TEST_CHECK_H

#include <stdio.h>

#include "replicore.h"

static int passed, failed;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond) {                                                                    \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

#define CHECK_STATUS(call, expected)                                                   \
    do {                                                                               \
        replicore_status s_ = (call);                                                  \
        if (s_ == (expected)) {                                                        \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            fprintf(stderr, "%s:%d: %s returned %s (%u), expected %s: %s\n", __FILE__,  \
                    __LINE__, #call, replicore_status_name(s_), (unsigned)s_,          \
                    #expected, replicore_last_error_message());                        \
        }                                                                              \
    } while (0)

#endif
