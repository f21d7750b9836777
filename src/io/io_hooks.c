/* The save path's file-system calls, replaceable so tests can fail each one
 * (a full disk, a failed fsync, a rename across devices) and check that the
 * old checkpoint is still there. */
#include "io/io_internal.h"

#include <stdio.h>
#include <unistd.h>

static size_t c_write(const void *data, size_t size, size_t n, FILE *f) { return fwrite(data, size, n, f); }

static tg_io_hooks hooks = { c_write, fflush, fsync, rename };

void tg_set_io_hooks(const tg_io_hooks *h)
{
    hooks.write = h && h->write ? h->write : c_write;
    hooks.flush = h && h->flush ? h->flush : fflush;
    hooks.sync = h && h->sync ? h->sync : fsync;
    hooks.rename = h && h->rename ? h->rename : rename;
}

size_t tg_io_write(const void *data, size_t size, size_t n, FILE *f) { return hooks.write(data, size, n, f); }
int tg_io_flush(FILE *f) { return hooks.flush(f); }
int tg_io_sync(int fd) { return hooks.sync(fd); }
int tg_io_rename(const char *from, const char *to) { return hooks.rename(from, to); }
