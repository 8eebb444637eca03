/*
 * session_data.c - the DATA phase of a client transaction, from the
 * client's DATA to the backend's final reply.
 *
 * Streamed: DATA goes to the backend, and after its 354 each received
 * buffer is scanned (data_scan) and queued to the backend by reference,
 * the Received: header first. Anything ambiguous (bare CR/LF, NUL,
 * over-long line), a size overrun or a backend failure aborts the
 * backend transaction (closed without the final dot); the session reads
 * on to the real end of data and refuses the message. Bytes after the
 * end are commands.
 *
 * Held, when the backend offers CHUNKING (RFC 3030): mxgate answers 354
 * itself and keeps the message until its end. One that ends within
 * HOLD_MAX octets and has no stuffed dot (so its octets on the wire are
 * the message itself) leaves as "BDAT n LAST", the Received: header and
 * the client's octets in one send: no DATA and no 354 on the backend
 * link, two of the eight packets mxgate relays for a small message. Any
 * other (longer, a line that starts with a dot, the worker's hold budget
 * spent) sends DATA after all; what was kept goes after the backend's
 * 354, and the rest streams as above. A refusal of that late DATA is the
 * client's reply at the end of its data, as RFC 5321 allows a server to
 * refuse a message there. A message refused for its content reaches no
 * backend at all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "envelope.h"
#include "log.h"
#include "session_int.h"
#include "worker.h"

#ifndef DATA_HIGH_WATER
#define DATA_HIGH_WATER (256 * 1024)	/* bytes queued to the backend before the client waits */
#endif
#ifndef DATA_MAX_SEGS
#define DATA_MAX_SEGS 16
#endif
/* A held message longer than this goes by DATA (a copy of it is kept meanwhile). */
#define HOLD_MAX (16 * 1024)
/* Octets all of a worker's sessions may keep; past it, DATA at once. */
#define HOLD_BUDGET (4 * 1024 * 1024)

static void data_refuse(struct session *s);

static void
on_final_reply(struct blink *l, void *owner, int code, const char *text, size_t len)
{
	struct session *s = owner;
	char first[256];

	(void)l;
	if (code < 0) {
		s->tx.link = NULL;
		session_reply(s, "451 4.4.2 Error: backend failed before accepting the message; try again later");
		txn_log(s, "tempfail", "backend failed after end of data");
		txn_end(s, LINK_ABORT);
		session_resume_commands(s);
		return;
	}
	relay_reply(s, text, len, code);
	{
		size_t n = strcspn(text, "\r\n");
		if (n > sizeof(first) - 1)
			n = sizeof(first) - 1;
		memcpy(first, text, n);
		first[n] = '\0';
	}
	if (code >= 200 && code < 300) {
		s->messages++;
		s->junk = 0;
	}
	txn_log(s, code < 300 ? "sent" : code < 500 ? "deferred" : "bounced", first);
	txn_end(s, LINK_CLEAN);
	session_resume_commands(s);
}

static void
on_stream_reply(struct blink *l, void *owner, int code, const char *text, size_t len)
{
	struct session *s = owner;

	(void)text;
	(void)len;
	/* Anything the backend says before our final dot ends its transaction. */
	if (code >= 0)
		blink_abort(l);
	s->tx.link = NULL;
	if (s->tx.refused == DR_NONE)
		s->tx.refused = DR_BACKEND;
	conn_recv_resume(&s->conn);
}

static void
on_link_drain(void *owner)
{
	struct session *s = owner;

	if (s->phase == PH_DATA)
		conn_recv_resume(&s->conn);
}

/* The transaction's Received: header (RFC 5321 4.4) into hdr; its length. */
static size_t
received_header(struct session *s, char *hdr, size_t size)
{
	struct txn *t = &s->tx;
	struct received_info ri;

	memset(&ri, 0, sizeof(ri));
	ri.helo = s->helo_name;
	ri.client_ip = s->peer_ip;
	ri.hostname = s->cfg->hostname;
	ri.proto = session_proto(s);
	ri.tls_version = conn_tls_version(&s->conn);
	ri.tls_cipher = conn_tls_cipher(&s->conn);
	ri.auth_user = s->auth_user[0] ? s->auth_user : NULL;
	ri.id = t->id;
	ri.rcpt = t->rcpts_ok == 1 ? t->first_rcpt : NULL;
	ri.when = t->data_at;
	return envelope_received(&ri, hdr, size);
}

/* The link streams from here: the header now, the client's octets as they come. */
static void
stream_start(struct session *s)
{
	struct blink *l = s->tx.link;
	char hdr[1024];

	conn_write(&l->conn, hdr, received_header(s, hdr, sizeof(hdr)));
	l->on_drain = on_link_drain;
	blink_expect(l, on_stream_reply, s, BLINK_NO_TIMEOUT);
}

void
data_pending_input(struct session *s)
{
	if (s->in_len) {
		size_t left = s->in_len;
		char *rest = s->in;

		s->in = NULL;
		s->in_len = s->in_cap = 0;
		session_data(s, rest, left, -1);
		free(rest);
	}
}

/*
 * 354 to the client; the transaction's link streams, or (hold) waits for
 * the end. A hold begins inside the command loop, which hands over the
 * bytes after DATA once it has let go of its input (session_process).
 */
static void
data_begin(struct session *s, int hold)
{
	struct txn *t = &s->tx;

	s->phase = PH_DATA;
	session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	conn_flush(&s->conn);
	data_scan_init(&t->scan, DATA_LINE_MAX);
	t->data_at = time(NULL);
	if (hold)
		t->hold = HOLD_ON;
	else
		stream_start(s);
	session_timer(s, s->cfg->timeout_data_ms);
	if (!hold)
		data_pending_input(s);
}

int
data_hold_begin(struct session *s)
{
	struct txn *t = &s->tx;

	/*
	 * A large message would wait for the backend's 354 after its first
	 * octets instead of before them: in a single stream of 1 MB
	 * messages that cost 15 % more CPU a message. So a message said
	 * (SIZE=) or, by the session's last one, likely to be large goes
	 * by DATA at once.
	 */
	if (!(t->link->caps & BCAP_CHUNKING) || s->big_sender ||
	    t->size_declared > HOLD_MAX || s->w->held_bytes >= HOLD_BUDGET)
		return 0;
	data_begin(s, 1);
	return 1;
}

void
data_cmd_reply(struct blink *l, void *owner, int code, const char *text, size_t len)
{
	struct session *s = owner;

	if (code < 0) {
		s->tx.link = NULL;
		session_reply(s, "451 4.4.2 Error: backend connection lost; try again later");
		txn_end(s, LINK_ABORT);
	} else if (code == 354) {
		data_begin(s, 0);
		return;
	} else if (code < 400) {
		/* No such answer to DATA: the replies and commands are out of step, and the link must go. */
		log_warn("conn=%s backend=%s answered DATA with %d", s->id, l->pool->name, code);
		session_reply(s, "451 4.4.2 Error: backend out of step; try again later");
		txn_log(s, "tempfail", "backend answered DATA with neither 354 nor an error");
		txn_end(s, LINK_ABORT);
	} else {
		relay_reply(s, text, len, code);
		txn_end(s, LINK_DIRTY);
	}
	session_resume_commands(s);
}

/* ---- the held message ---- */

/* Keeps a copy of client octets; counted against the worker's budget. */
static int
hold_keep(struct session *s, const char *p, size_t n)
{
	struct txn *t = &s->tx;

	if (t->held_len + n > t->held_cap) {
		size_t cap = t->held_cap ? t->held_cap : 4096;
		char *b;

		while (cap < t->held_len + n)
			cap *= 2;
		b = realloc(t->held, cap);
		if (b == NULL)
			return -1;
		s->w->held_bytes += cap - t->held_cap;
		t->held = b;
		t->held_cap = cap;
	}
	memcpy(t->held + t->held_len, p, n);
	t->held_len += n;
	return 0;
}

/* The piece kept by reference goes into the copy: what comes after it must follow it. */
static int
hold_copy_ref(struct session *s)
{
	struct txn *t = &s->tx;
	int rc = 0;

	if (t->held_ref_len) {
		rc = hold_keep(s, t->held_ref, t->held_ref_len);
		pbuf_unref(s->w->ring.pbufs, t->held_bid);
		t->held_ref_len = 0;
	}
	return rc;
}

void
data_release(struct session *s)
{
	struct txn *t = &s->tx;

	if (t->held_ref_len) {
		pbuf_unref(s->w->ring.pbufs, t->held_bid);
		t->held_ref_len = 0;
	}
	s->w->held_bytes -= t->held_cap;
	free(t->held);
	t->held = NULL;
	t->held_len = t->held_cap = 0;
	free(t->refusal);
	t->refusal = NULL;
	t->hold = HOLD_NONE;
}

/* The backend's answer to the DATA of a held message. */
static void
on_late_data_reply(struct blink *l, void *owner, int code, const char *text, size_t len)
{
	struct session *s = owner;
	struct txn *t = &s->tx;
	int done = t->scan.done;

	if (code == 354) {
		stream_start(s);
		conn_write(&l->conn, t->held, t->held_len);
		if (t->held_ref_len)
			conn_write_pbuf(&l->conn, t->held_ref, t->held_ref_len, t->held_bid);
		data_release(s);
		conn_flush(&l->conn);
		if (done)
			blink_expect(l, on_final_reply, s, s->cfg->timeout_data_ms);
		else
			conn_recv_resume(&s->conn);
		return;
	}
	data_release(s);
	if (code >= 400) {
		/* Told at the end of the data: the client had its 354 from us. */
		t->refusal = malloc(len + 1);
		if (t->refusal) {
			memcpy(t->refusal, text, len);
			t->refusal_len = len;
			t->refusal_code = code;
			t->refused = DR_REPLY;
		} else {
			t->refused = DR_BACKEND;
		}
		blink_release(l, 1);
	} else {
		if (code >= 0) {
			log_warn("conn=%s backend=%s answered DATA with %d", s->id, l->pool->name, code);
			blink_abort(l);
		}
		t->refused = DR_BACKEND;
	}
	t->link = NULL;
	if (!done) {
		conn_recv_resume(&s->conn);
		return;
	}
	data_refuse(s);
	session_resume_commands(s);
}

/* The held message goes by DATA after all; the client waits for its 354. */
static void
hold_give_up(struct session *s)
{
	struct txn *t = &s->tx;

	t->hold = HOLD_DATA_SENT;
	blink_command(t->link, "DATA", 4, on_late_data_reply, s, 0);
	conn_recv_pause(&s->conn);
}

/* Whether the message h[0..a) then p[0..b) has a line that starts with a dot. */
static int
hold_dotted(const char *h, size_t a, const char *p, size_t b)
{
	if (data_stuffed_dot(h, a))
		return 1;
	if (b == 0)
		return 0;
	if ((a == 0 || h[a - 1] == '\n') && p[0] == '.')
		return 1;
	return memmem(p, b, "\n.", 2) != NULL;
}

/*
 * The end came with p[0..n): the held octets and these, less the final
 * ".\r\n", are the message; sent as one BDAT, p by reference when it
 * is a pool buffer. -1 (nothing sent) when a line starts with a dot.
 */
static int
hold_send(struct session *s, const char *p, size_t n, int bid)
{
	struct txn *t = &s->tx;
	struct conn *bc = &t->link->conn;
	size_t a = t->held_len, b = n, h;
	char hdr[1024], cmd[64];
	int c;

	/* The terminator may straddle what was held and this piece. */
	if (b >= 3)
		b -= 3;
	else {
		a -= 3 - b;
		b = 0;
	}
	if (hold_dotted(t->held, a, p, b))
		return -1;
	h = received_header(s, hdr, sizeof(hdr));
	c = snprintf(cmd, sizeof(cmd), "BDAT %zu LAST\r\n", h + a + b);
	conn_write(bc, cmd, (size_t)c);
	conn_write(bc, hdr, h);
	if (a)
		conn_write(bc, t->held, a);
	if (b && bid >= 0)
		conn_write_pbuf(bc, p, b, bid);
	else if (b)
		conn_write(bc, p, b);
	conn_flush(bc);
	return 0;
}

/* Keeps p[0..n) for after the backend's 354: by reference when a pool buffer. */
static int
hold_piece(struct session *s, const char *p, size_t n, int bid)
{
	struct txn *t = &s->tx;

	if (hold_copy_ref(s) < 0)
		return -1;
	if (bid < 0)
		return hold_keep(s, p, n);
	pbuf_ref(s->w->ring.pbufs, bid);
	t->held_ref = p;
	t->held_ref_len = n;
	t->held_bid = bid;
	return 0;
}

/* Client octets p[0..n) of a held message (the end among them when scan.done). */
static void
hold_data(struct session *s, const char *p, size_t n, int bid)
{
	struct txn *t = &s->tx;
	int rc;

	if (t->hold == HOLD_DATA_SENT) {
		/* Waiting for the 354: after what is kept, in order. */
		rc = hold_copy_ref(s) < 0 ? -1 : hold_keep(s, p, n);
	} else if (t->scan.done) {
		if (hold_send(s, p, n, bid) == 0) {
			data_release(s);
			return;
		}
		rc = hold_piece(s, p, n, bid);
		hold_give_up(s);
	} else if (bid >= 0 && t->held_len + n > HOLD_MAX) {
		/* Too long to hold: DATA, and this piece waits for the 354 where it landed. */
		rc = hold_piece(s, p, n, bid);
		hold_give_up(s);
	} else {
		rc = hold_keep(s, p, n);
		if (t->held_len > HOLD_MAX || s->w->held_bytes > HOLD_BUDGET)
			hold_give_up(s);
	}
	if (rc < 0)
		t->refused = DR_BACKEND;	/* out of memory: 451 at the end */
}

/* ---- the client's octets ---- */

static void
data_refuse(struct session *s)
{
	struct txn *t = &s->tx;

	switch (t->refused) {
	case DR_SMUGGLE:
		if (t->scan.flags & (DATA_FLAG_BARE_LF | DATA_FLAG_BARE_CR | DATA_FLAG_NUL)) {
			session_reply(s, "550 5.6.0 Error: message refused: bare CR, bare LF or NUL in data (RFC 5321 2.3.8)");
			txn_log(s, "refused", "bare CR/LF or NUL in data");
		} else {
			session_reply(s, "550 5.6.0 Error: message refused: text line longer than 1000 octets");
			txn_log(s, "refused", "line too long");
		}
		break;
	case DR_SIZE:
		session_reply(s, "552 5.3.4 Error: message size exceeds fixed limit");
		txn_log(s, "refused", "message too big");
		break;
	case DR_REPLY:
		relay_reply(s, t->refusal, t->refusal_len, t->refusal_code);
		txn_log(s, t->refusal_code < 500 ? "deferred" : "bounced", "backend refused DATA");
		break;
	default:
		session_reply(s, "451 4.4.2 Error: backend failed during DATA; message not accepted, try again later");
		txn_log(s, "tempfail", "backend failed during data");
		break;
	}
	/* A held message never reached the link: it is clean but for MAIL and RCPT. */
	txn_end(s, t->hold == HOLD_ON ? LINK_DIRTY : LINK_ABORT);
}

/*
 * Back-pressure: the client is not read while its backend is behind.
 * Bytes and buffers both count (many small reads would pin many pool
 * buffers), and when the worker's pool runs low each session may hold
 * only a couple, so one slow backend cannot starve every other session.
 */
static int
data_backlogged(const struct session *s, const struct conn *bc)
{
	const struct pbuf_pool *p = s->w->ring.pbufs;

	if (conn_queued(bc) > DATA_HIGH_WATER || bc->seg_count > DATA_MAX_SEGS)
		return 1;
	return pbuf_free_count(p) < p->nbufs / 4 && bc->seg_count >= 2;
}

void
session_data(struct session *s, const char *data, size_t len, int bid)
{
	struct txn *t = &s->tx;
	size_t n = data_scan(&t->scan, data, len);

	t->bytes += n;
	if (t->refused == DR_NONE) {
		if (t->scan.flags)
			t->refused = DR_SMUGGLE;
		else if (t->bytes > s->cfg->max_message_size + 3)	/* + the final ".\r\n" */
			t->refused = DR_SIZE;
		if (t->refused != DR_NONE && t->link && t->hold != HOLD_ON) {
			/* Without the final dot the backend discards what it has. */
			blink_abort(t->link);
			t->link = NULL;
		}
	}
	if (t->refused == DR_NONE && t->link) {
		struct conn *bc = &t->link->conn;

		if (t->hold != HOLD_NONE) {
			hold_data(s, data, n, bid);
		} else {
			if (bid >= 0)
				conn_write_pbuf(bc, data, n, bid);
			else
				conn_write(bc, data, n);
			conn_flush(bc);
		}
	}
	if (!t->scan.done) {
		session_timer(s, s->cfg->timeout_data_ms);
		if (t->link && t->hold == HOLD_NONE && data_backlogged(s, &t->link->conn))
			conn_recv_pause(&s->conn);
		return;
	}
	if (n < len)
		in_append(s, data + n, len - n);
	s->big_sender = t->bytes > HOLD_MAX;
	timer_cancel(&s->w->ring.timers, &s->timer);
	if (t->refused == DR_NONE && t->link) {
		s->phase = PH_WAIT;
		if (t->hold == HOLD_DATA_SENT)
			return;		/* on_late_data_reply goes on */
		t->link->on_drain = NULL;
		blink_expect(t->link, on_final_reply, s, s->cfg->timeout_data_ms);
		return;
	}
	data_refuse(s);
	session_resume_commands(s);
}
