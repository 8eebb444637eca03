/*
 * sink_store.c - owns the files of mxsink --store: each message goes
 * un-dot-stuffed into DIR/.tmp.<id>.eml while it arrives (so memory stays
 * bounded whatever its size); on success the envelope is written to
 * DIR/.tmp.<id>.env and both are renamed, .env first, so a reader never
 * sees a partial file; on failure or abort the temp file is unlinked and
 * DIR holds nothing of the message.
 *
 * Un-stuffing (RFC 5321 4.5.2): a line's leading "." is removed. Only
 * CRLF ends a line, as in data_scan: a bare LF or CR is an ordinary octet
 * and is kept. The terminating ".\r\n" therefore leaves exactly "\r\n"
 * at the end of the output; the writer always holds back the last two
 * octets, so commit can drop them without seeking.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "sink.h"

#define SINK_STAGE_SIZE (256 * 1024)

void
sink_store_init(struct sink_store *st)
{
	memset(st, 0, sizeof(*st));
	st->fd = -1;
}

int
sink_store_open(struct sink_store *st, const char *dir, const char *id)
{
	snprintf(st->tmp, sizeof(st->tmp), "%s/.tmp.%s.eml", dir, id);
	if (st->stage == NULL) {
		st->stage = malloc(SINK_STAGE_SIZE);
		if (st->stage == NULL)
			return -1;
	}
	/* O_EXCL: a second mxsink on the same DIR can never write into our file. */
	st->fd = open(st->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (st->fd < 0)
		return -1;
	st->bol = 1;
	st->prev_cr = 0;
	st->failed = 0;
	st->len = 0;
	return 0;
}

static int
sink_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Writes the stage but its last two octets (see the header comment). */
static void
sink_stage_flush(struct sink_store *st)
{
	size_t n = st->len - 2;

	if (!st->failed && sink_write_all(st->fd, st->stage, n) < 0)
		st->failed = 1;
	memmove(st->stage, st->stage + n, 2);
	st->len = 2;
}

static void
sink_stage_put(struct sink_store *st, const char *p, size_t n)
{
	while (n) {
		size_t room = SINK_STAGE_SIZE - st->len, c;

		if (room == 0) {
			sink_stage_flush(st);
			room = SINK_STAGE_SIZE - st->len;
		}
		c = n < room ? n : room;
		memcpy(st->stage + st->len, p, c);
		st->len += c;
		p += c;
		n -= c;
	}
}

void
sink_store_feed(struct sink_store *st, const char *p, size_t n)
{
	while (n) {
		const char *lf;
		size_t seg;

		if (st->bol) {
			st->bol = 0;
			if (*p == '.') {
				/* the stuffed dot */
				p++;
				n--;
				st->prev_cr = 0;
				continue;
			}
		}
		lf = memchr(p, '\n', n);
		seg = lf ? (size_t)(lf - p) + 1 : n;
		if (lf)
			st->bol = lf > p ? lf[-1] == '\r' : st->prev_cr;
		st->prev_cr = p[seg - 1] == '\r';
		sink_stage_put(st, p, seg);
		p += seg;
		n -= seg;
	}
}

void
sink_store_raw(struct sink_store *st, const char *p, size_t n)
{
	sink_stage_put(st, p, n);
}

static int
sink_write_file(const char *path, const char *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		return -1;
	if (sink_write_all(fd, p, n) < 0) {
		close(fd);
		unlink(path);
		return -1;
	}
	return close(fd);
}

int
sink_store_commit(struct sink_store *st, const char *dir, const char *id,
		  const char *env, size_t envlen)
{
	char envtmp[4096], envpath[4096], emlpath[4096];

	if (st->fd < 0)
		return -1;
	/* The terminator's CRLF is the last thing staged (header comment). */
	if (st->len >= 2)
		st->len -= 2;
	if (!st->failed && sink_write_all(st->fd, st->stage, st->len) < 0)
		st->failed = 1;
	st->len = 0;
	if (close(st->fd) < 0)
		st->failed = 1;
	st->fd = -1;
	snprintf(envtmp, sizeof(envtmp), "%s/.tmp.%s.env", dir, id);
	snprintf(envpath, sizeof(envpath), "%s/%s.eml.env", dir, id);
	snprintf(emlpath, sizeof(emlpath), "%s/%s.eml", dir, id);
	if (st->failed || sink_write_file(envtmp, env, envlen) < 0)
		goto fail;
	if (rename(envtmp, envpath) < 0) {
		unlink(envtmp);
		goto fail;
	}
	if (rename(st->tmp, emlpath) < 0) {
		unlink(envpath);
		goto fail;
	}
	st->tmp[0] = '\0';
	return 0;
fail:
	unlink(st->tmp);
	st->tmp[0] = '\0';
	return -1;
}

void
sink_store_abort(struct sink_store *st)
{
	if (st->fd >= 0) {
		close(st->fd);
		st->fd = -1;
		unlink(st->tmp);
	}
	st->tmp[0] = '\0';
	st->len = 0;
}
