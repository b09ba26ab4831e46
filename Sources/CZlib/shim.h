#include <zlib.h>

/* inflateInit2 is a macro over inflateInit2_; Swift cannot call macros. */
static inline int cortex_inflate_init_raw(z_streamp stream) {
    return inflateInit2(stream, -MAX_WBITS);
}
