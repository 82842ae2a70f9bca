/* Fuzz target: the fine-tune request body (server/job_spec.c): job_spec_parse, and for an
 * accepted spec its JSON echo (job_spec_json) dumped and parsed again to the same spec. */
#include "fuzz.h"
#include "job_spec.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cnn_err err = {0};
    struct job_spec s;
    if (job_spec_parse(size ? (const char *)data : NULL, size, &s, &err) != 0) { /* as r->body */
        if (!err.msg[0])
            abort(); /* a refusal always says why */
        return 0;
    }
    json_t *j = job_spec_json(&s);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text) {
        struct job_spec again;
        if (job_spec_parse(text, strlen(text), &again, &err) != 0)
            abort(); /* the echo of an accepted spec is accepted */
        if (again.epochs != s.epochs || again.batch_size != s.batch_size ||
            again.n_labels != s.n_labels || again.n_classes != s.n_classes ||
            strcmp(again.path, s.path) != 0)
            abort();
        job_spec_free(&again);
        free(text);
    }
    job_spec_free(&s);
    return 0;
}
