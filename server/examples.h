/* Collected examples: POST /admin/v1/models/{name}/examples (multipart/form-data with an
 * "image" part, PNG or JPEG, and a "label" part naming one of the live model's labels)
 * stores the image under DATA_ROOT/examples/NAME/LABELDIR/NNNNNN.png|.jpg -- a class-folder
 * dataset a later fine-tune job can use with {"format": "folder", "path":
 * "examples/NAME"}.  The image is decoded before it is kept (size from the header first,
 * max_image_pixels), at most example_max_bytes per image and max_examples per model; the
 * file is written under a dot name, fsync'd, and linked into place without replacing
 * anything, every folder opened with O_NOFOLLOW (safepath_open_dirs).
 *
 * LABELDIR is the label with every byte outside [A-Za-z0-9 _.,+-] (and a leading '.')
 * written as %XX, so "T-shirt/top" is stored as "T-shirt%2Ftop"; job_run.c decodes folder
 * names the same way when it matches class folders to a model's labels.  Any thread. */
#ifndef EXAMPLES_H
#define EXAMPLES_H

#include <stddef.h>

struct request;

/* The handler (admin MHD thread). */
void handle_admin_examples(struct request *r);

/* label -> folder name (NUL-terminated, cap >= 3 * strlen(label) + 1).  0, or -1 when it
 * does not fit or the label is empty. */
int examples_label_dir(const char *label, char *out, size_t cap);
/* folder name -> label (%XX decoded).  0, or -1 for a bad escape or when it does not fit. */
int examples_dir_label(const char *dir, char *out, size_t cap);

#endif
