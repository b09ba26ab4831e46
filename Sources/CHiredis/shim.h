#ifndef CORTEX_CHIREDIS_SHIM_H
#define CORTEX_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <poll.h>
#include <sys/socket.h>

/* hiredis' redisCommand is variadic and cannot be called from Swift; Cortex only uses
   redisAppendCommandArgv / redisGetReply, which are plain functions. */

/* Frees a reply handed out by redisGetReply (freeReplyObject takes void*). */
static inline void cortex_free_reply(redisReply *reply) { freeReplyObject(reply); }

/* The reader's buffered reply, if any, without touching the socket. */
static inline int cortex_buffered_reply(redisContext *c, redisReply **reply) {
    return redisReaderGetReply(c->reader, (void **)reply);
}

/* Waits up to timeout_ms for the socket to become readable: 1 readable, 0 timeout, -1 error. */
static inline int cortex_wait_readable(redisContext *c, int timeout_ms) {
    struct pollfd p = { .fd = c->fd, .events = POLLIN, .revents = 0 };
    int r = poll(&p, 1, timeout_ms);
    if (r > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)) && !(p.revents & POLLIN)) return -1;
    return r > 0 ? 1 : r;
}
#endif
