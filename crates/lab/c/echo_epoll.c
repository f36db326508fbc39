/*
 * c-epoll: the lab's reference echo server, the practical ceiling for one thread.
 *
 * Edge-triggered epoll: every socket is registered once for EPOLLIN | EPOLLOUT |
 * EPOLLRDHUP | EPOLLET and never modified; each event is drained until EAGAIN. All
 * reads go into one stack buffer per loop; connection state is an array indexed by
 * descriptor (grown by doubling, so amortised over connections, never per request).
 * Only a short write allocates: the bytes the socket did not take are kept until
 * EPOLLOUT, and the space is reused for the connection's next short write.
 *
 * Called from Rust (crates/lab/src/models/c_epoll.rs) on an already-bound non-blocking
 * listener; returns when wake_fd becomes readable (the lab's shutdown pipe), after
 * closing every connection it holds. Nothing here is shared between loops, so several
 * may run in threads on duplicates of one listener.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { READ_BUF = 16 * 1024, MAX_EVENTS = 256 };

struct conn {
    char *pending;   /* bytes a short write left behind */
    size_t len;      /* how many of them */
    size_t off;      /* how many of those were written since */
    size_t cap;      /* capacity of pending */
    int open;
};

struct loop {
    int epfd;
    struct conn *conns;
    size_t nconns;
    char buf[READ_BUF];
};

/* Makes sure conns[fd] exists. Returns 0, or -ENOMEM. */
static int reserve(struct loop *l, int fd) {
    size_t need = (size_t)fd + 1;
    if (need <= l->nconns)
        return 0;
    size_t n = l->nconns ? l->nconns : 1024;
    while (n < need)
        n *= 2;
    struct conn *c = realloc(l->conns, n * sizeof *c);
    if (!c)
        return -ENOMEM;
    memset(c + l->nconns, 0, (n - l->nconns) * sizeof *c);
    l->conns = c;
    l->nconns = n;
    return 0;
}

static void close_conn(struct loop *l, int fd) {
    struct conn *c = &l->conns[fd];
    free(c->pending);
    memset(c, 0, sizeof *c);
    close(fd); /* also removes it from the epoll set */
}

/* Writes buf[0..n) to fd; keeps what the socket did not take. 1: all written,
 * 0: the rest is pending (wait for EPOLLOUT), -1: the connection is broken. */
static int write_or_keep(struct conn *c, int fd, const char *buf, size_t n) {
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, buf + off, n - off);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            size_t rest = n - off;
            if (rest > c->cap) {
                char *p = realloc(c->pending, rest);
                if (!p)
                    return -1;
                c->pending = p;
                c->cap = rest;
            }
            memcpy(c->pending, buf + off, rest);
            c->len = rest;
            c->off = 0;
            return 0;
        } else {
            return -1;
        }
    }
    return 1;
}

/* Flushes pending bytes, then echoes until read says EAGAIN. 0: keep the connection,
 * -1: close it (EOF after everything was echoed, or an error). */
static int pump(struct loop *l, int fd) {
    struct conn *c = &l->conns[fd];
    while (c->off < c->len) {
        ssize_t w = write(fd, c->pending + c->off, c->len - c->off);
        if (w > 0)
            c->off += (size_t)w;
        else if (w < 0 && errno == EINTR)
            continue;
        else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    c->len = c->off = 0;
    for (;;) {
        ssize_t r = read(fd, l->buf, sizeof l->buf);
        if (r == 0)
            return -1;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        int w = write_or_keep(c, fd, l->buf, (size_t)r);
        if (w < 0)
            return -1;
        if (w == 0)
            return 0; /* stop reading until the socket drains (backpressure) */
    }
}

static int add(struct loop *l, int fd, unsigned events) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.fd = fd;
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void accept_all(struct loop *l, int listen_fd) {
    for (;;) {
        int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return; /* EAGAIN: drained; EMFILE and friends: the next edge retries */
        }
        if (reserve(l, fd) < 0 ||
            add(l, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) < 0) {
            close(fd);
            continue;
        }
        l->conns[fd].open = 1;
        /* Data may already be queued: no new edge would announce it. */
        if (pump(l, fd) < 0)
            close_conn(l, fd);
    }
}

/* Serves echo on listen_fd until wake_fd is readable. Returns 0, or -errno when the
 * loop cannot be set up or epoll_wait fails. */
int sockit_c_epoll_serve(int listen_fd, int wake_fd) {
    struct loop *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    int rc = 0;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        rc = -errno;
        free(l);
        return rc;
    }
    if (add(l, wake_fd, EPOLLIN) < 0 || add(l, listen_fd, EPOLLIN | EPOLLET) < 0) {
        rc = -errno;
        goto out;
    }
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(l->epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out;
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == wake_fd)
                goto out;
            if (fd == listen_fd) {
                accept_all(l, listen_fd);
                continue;
            }
            if ((size_t)fd < l->nconns && l->conns[fd].open && pump(l, fd) < 0)
                close_conn(l, fd);
        }
    }
out:
    for (size_t fd = 0; fd < l->nconns; fd++)
        if (l->conns[fd].open)
            close_conn(l, (int)fd);
    free(l->conns);
    close(l->epfd);
    free(l);
    return rc;
}
