/*
 * session.c - the client-facing ESMTP session (see session.h).
 *
 * Commands are parsed by smtp_parse (pure) and dispatched through a verb
 * table; each handler checks sequence and syntax and answers locally, or
 * hands the rebuilt command to the transaction's backend link and
 * suspends the command loop (PH_WAIT) until the backend's reply, which
 * becomes the client's reply. Replies are queued and flushed only when
 * the loop runs out of buffered input, so a pipelined group's replies
 * leave in one send (RFC 2920 3.1).
 *
 * The DATA phase, from the client's DATA to the backend's final reply,
 * is session_data.c's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "config.h"
#include "envelope.h"
#include "cidr.h"
#include "policy.h"
#include "proxy_proto.h"
#include "log.h"
#include "session.h"
#include "session_int.h"
#include "smtp_parse.h"
#include "tls.h"
#include "assets.h"
#include "worker.h"

#define AUTH_LINE_MAX 4096		/* see line_max() */
#define IN_PAUSE_AT 16384		/* stop reading commands while this much waits */
#define OUT_PAUSE_AT 65536		/* a client that does not read its replies is not read either */
#define DRAIN_LINGER_MS 1000
#define TLS_HANDSHAKE_MS 30000	/* a handshake stalled this long is dropped */
#define PROXY_AUTO_WAIT_MS 300	/* proxy_protocol = auto: a direct client sends nothing before the greeting */

static void on_recv(struct conn *c, char *data, size_t len, int bid);
static void on_eof(struct conn *c, int err);
static void on_closed(struct conn *c);
static void on_drain(struct conn *c);
static void on_tls(struct conn *c, int err);
static void session_timeout(struct timer *t);
static void session_connected(struct session *s);
static void proxy_header(struct session *s);

static const struct conn_ops session_ops = {
	.on_recv = on_recv,
	.on_eof = on_eof,
	.on_closed = on_closed,
	.on_drain = on_drain,
	.on_tls = on_tls,
};

void
session_reply(struct session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (strchr(fmt, '%') == NULL && (n = (int)strlen(fmt)) <= (int)sizeof(buf) - 3) {
		/* A fixed reply (354, 250 Ok, ...): no formatting, several a message. */
		memcpy(buf, fmt, (size_t)n);
	} else {
		va_start(ap, fmt);
		n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
		va_end(ap);
	}
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 3)
		n = sizeof(buf) - 3;
	buf[n++] = '\r';
	buf[n++] = '\n';
	conn_write(&s->conn, buf, (size_t)n);
}

/* Counts a client mistake; past max_errors: 421, the session closes, and 1 is returned. */
static int
count_error(struct session *s)
{
	if (++s->errors > s->cfg->max_errors) {
		session_reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
		session_close(s, "too many errors");
		return 1;
	}
	return 0;
}

/*
 * Commands that cost the client nothing and move no mail: past
 * max_junk_commands without an accepted message, each is an error too,
 * so a session cannot idle on them forever (Postfix: junk commands).
 */
static int
is_junk(enum smtp_verb v)
{
	return v == SMTP_NOOP || v == SMTP_VRFY || v == SMTP_RSET || v == SMTP_HELP;
}

/* A client mistake: counted, and past max_errors the session ends. */
void
session_reply_error(struct session *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (count_error(s))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	session_reply(s, "%s", buf);
}

void
relay_reply(struct session *s, const char *text, size_t len, int code)
{
	char out[BREPLY_MAX + 64];
	size_t n = envelope_clean_reply(text, len, out, sizeof(out));

	if (n == 0) {
		session_reply(s, "%d %s", code, code >= 500 ? "5.5.0 Error" : code >= 400 ? "4.0.0 Error" : "2.0.0 Ok");
		return;
	}
	conn_write(&s->conn, out, n);
}

void
session_timer(struct session *s, uint64_t ms)
{
	timer_arm(&s->w->ring.timers, &s->timer, ms);
}

void
in_append(struct session *s, const char *data, size_t len)
{
	if (s->in_len + len > s->in_cap) {
		size_t cap = s->in_cap ? s->in_cap : 1024;
		char *p;

		while (cap < s->in_len + len)
			cap *= 2;
		p = realloc(s->in, cap);
		if (p == NULL) {
			session_close(s, "out of memory");
			return;
		}
		s->in = p;
		s->in_cap = cap;
	}
	memcpy(s->in + s->in_len, data, len);
	s->in_len += len;
}

/*
 * The complete line at *off of the client's input: its start, its length
 * without CR LF in *n, and *off moved past it; NULL when no LF has come yet.
 */
static const char *
in_line(const struct session *s, size_t *off, size_t *n)
{
	const char *start = s->in + *off;
	const char *nl = s->in_len > *off ? memchr(start, '\n', s->in_len - *off) : NULL;

	if (nl == NULL)
		return NULL;
	*n = (size_t)(nl - start);
	*off += *n + 1;
	if (*n && start[*n - 1] == '\r')
		(*n)--;
	return start;
}

/* RFC 3848 protocol names: ESMTP, plus S under TLS, plus A when authenticated. */
const char *
session_proto(const struct session *s)
{
	static const char *const names[2][2][2] = {
		{ { "SMTP", "SMTPA" }, { "SMTPS", "SMTPSA" } },
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
	};
	return names[s->esmtp != 0][s->tls != 0][s->auth_user[0] != 0];
}

/* ---- transaction ---- */

void
txn_log(struct session *s, const char *status, const char *why)
{
	struct txn *t = &s->tx;
	char from[200], r[200];

	log_info("msg id=%s conn=%s client=%s from=<%s> rcpts=%u size=%llu backend=%s status=%s reply=\"%s\" ms=%llu",
		 t->id, s->id, s->peer_str, log_escape(from, sizeof(from), t->from, strlen(t->from)),
		 t->rcpts_ok, (unsigned long long)t->bytes, t->backend[0] ? t->backend : "-", status,
		 log_escape(r, sizeof(r), why, strlen(why)),
		 (unsigned long long)(timer_now_ms() - t->start_ms));
}

void
txn_end(struct session *s, enum link_end how)
{
	struct txn *t = &s->tx;

	if (t->acq)
		backend_acquire_cancel(t->acq);
	if (t->link) {
		if (how == LINK_ABORT)
			blink_abort(t->link);
		else
			blink_release(t->link, how == LINK_DIRTY);
	}
	free(t->mail_reply);
	data_release(s);
	memset(t, 0, sizeof(*t));
}

/* After an answer from a backend: back to reading commands. */
void
session_resume_commands(struct session *s)
{
	if (s->phase == PH_CLOSING)
		return;
	s->phase = PH_CMD;
	session_process(s);
}

/*
 * Between the client's commands the transaction holds its link with no
 * reply due. Should the backend drop it or speak unasked (a 421 before
 * it closes), the link goes, and the transaction's next command is
 * refused (txn_link_lost) instead of using a link that no longer exists.
 */
static void
on_link_between(struct blink *l, void *owner, int code, const char *text, size_t len)
{
	struct session *s = owner;

	(void)text;
	(void)len;
	log_warn("conn=%s backend=%s lost mid-transaction (%d)", s->id, l->pool->name, code);
	if (code >= 0)
		blink_abort(l);
	if (s->tx.link == l)
		s->tx.link = NULL;
	s->tx.link_lost = 1;
}

static void
txn_hold_link(struct session *s)
{
	if (s->tx.link)
		blink_expect(s->tx.link, on_link_between, s, BLINK_NO_TIMEOUT);
}

/* The link went between commands: 451, and the client starts the transaction over. */
static int
txn_link_lost(struct session *s)
{
	if (!s->tx.link_lost)
		return 0;
	session_reply(s, "451 4.4.2 Error: backend connection lost; try again later");
	txn_log(s, "tempfail", "backend lost between commands");
	txn_end(s, LINK_CLEAN);
	return 1;
}

static void
on_rcpt_reply(struct blink *l, void *owner, int code, const char *text, size_t len)
{
	struct session *s = owner;

	(void)l;
	if (code < 0) {
		s->tx.link = NULL;
		session_reply(s, "451 4.4.2 Error: backend connection lost; try again later");
		txn_log(s, "tempfail", "backend lost at RCPT");
		txn_end(s, LINK_ABORT);
	} else {
		relay_reply(s, text, len, code);
		if (code >= 200 && code < 300)
			s->tx.rcpts_ok++;
		else if (s->tx.rcpts_ok == 0)
			s->tx.first_rcpt[0] = '\0';
		txn_hold_link(s);
	}
	session_resume_commands(s);
}

static void link_ready(void *owner, struct blink *l);

/*
 * ---- MAIL ----
 * The policy check (message rate, and the first recipient paid in
 * advance: one store round trip) and the backend's side (a link,
 * XFORWARD/XCLIENT, MAIL) start together, and the client is answered
 * when both are known. Either may finish first, and either may finish
 * before the call that started it returns (the embedded store answers
 * at once; so does a backend_acquire that finds no backend). The policy
 * has the last word: refused here but accepted there, the link is RSET
 * before it serves anyone else, so no backend keeps a transaction the
 * client was told failed. A policy refusal known before the backend is
 * asked (the embedded store) asks no backend at all.
 */
enum { MW_POLICY = 1, MW_BACKEND = 2 };

/*
 * ---- commands sent ahead (RFC 2920 towards the backend) ----
 * A client that pipelines MAIL, RCPT... and DATA waits one round trip
 * for the group; relayed one command at a time it would wait one per
 * command, and each costs both sides a send, a receive and a wake-up.
 * So the RCPTs and DATA behind a MAIL leave with it when it is certain
 * now that each will reach the backend as it is: the checks of its own
 * (syntax, relay domains, count) pass, and its policy answer needs no
 * store. Their replies still come one at a time in order, each claimed
 * when the command's turn comes; the hash of each line sent makes sure
 * the claim is for the same command.
 */
static uint64_t
line_hash(const char *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;	/* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	return h;
}

/*
 * The checks of RCPT that need neither the backend nor the store, for a
 * transaction with `accepted` recipients so far; builds the backend's
 * line. Returns its length, or -1 (the client answered when reply).
 */
static int
rcpt_local(struct session *s, const struct smtp_cmd *cmd, unsigned accepted, char *out,
	   size_t outlen, int reply)
{
	struct env_verdict v;
	int n;

	if (accepted >= s->cfg->max_recipients) {
		if (reply)
			session_reply(s, "452 4.5.3 Error: too many recipients");
		return -1;
	}
	/* An authenticated client may relay anywhere (as Postfix's permit_sasl_authenticated). */
	if (s->lst->mode == CFG_MODE_RELAY && !s->lst->relay_any && !s->auth_user[0]) {
		struct slice d = envelope_domain(cmd->path);

		/* A domain-less <postmaster> is always accepted (RFC 5321 4.5.1). */
		if (d.len && !envelope_domain_listed(d, s->lst->relay_domains, s->lst->nrelay_domains)) {
			char esc[300];

			if (reply)
				session_reply(s, "554 5.7.1 <%s>: Relay access denied",
					      log_escape(esc, sizeof(esc), cmd->path.p, cmd->path.len));
			return -1;
		}
	}
	n = envelope_rcpt(cmd, s->dsn, out, outlen, &v);
	if (n < 0 && reply)
		session_reply_error(s, "%d %s", v.code, v.text);
	return n;
}

static void
ahead_send(struct session *s, struct blink *l, const char *line, size_t len)
{
	blink_presend(l, line, len);
	s->tx.ahead[s->tx.nahead++] = line_hash(line, len);
}

/* With MAIL on its way to l: the RCPTs and DATA pipelined behind it that may go too. */
static void
send_ahead(struct session *s, struct blink *l)
{
	struct txn *t = &s->tx;
	size_t off = s->in_pos;
	unsigned rcpts = 0;

	t->nahead = t->ahead_used = 0;
	/*
	 * Not while the policy has not answered MAIL (a refusal would leave
	 * recipients at the backend), nor with the client's replies piling
	 * up unread (the loop would stop before claiming theirs).
	 */
	if (!(l->caps & BCAP_PIPELINING) || (t->mail_wait & MW_POLICY) || t->mail_verdict != POLICY_OK ||
	    s->discarding || s->auth_step || s->w->stopping || conn_queued(&s->conn) >= OUT_PAUSE_AT / 2)
		return;
	while (t->nahead < TXN_AHEAD_MAX) {
		char line[SMTP_LINE_MAX + 1], out[SMTP_LINE_MAX + 64];
		struct smtp_cmd cmd;
		const char *why, *start;
		size_t n;
		int len;

		start = in_line(s, &off, &n);
		if (start == NULL || n + 2 > SMTP_LINE_MAX)
			break;
		memcpy(line, start, n);
		line[n] = '\0';
		if (smtp_parse_line(line, n, &cmd, &why) != SMTP_PARSE_OK)
			break;
		if (cmd.verb == SMTP_DATA) {
			if (rcpts)
				ahead_send(s, l, "DATA", 4);
			break;
		}
		if (cmd.verb != SMTP_RCPT || !policy_rcpt_free(s, rcpts))
			break;
		len = rcpt_local(s, &cmd, t->rcpts_ok + rcpts, out, sizeof(out), 0);
		if (len < 0)
			break;
		ahead_send(s, l, out, (size_t)len);
		rcpts++;
	}
}

/* Whether every backend of the listener has said (in its EHLO reply) it offers cap. */
static int
backends_offer(struct session *s, unsigned cap)
{
	int all = s->lst->nbackends > 0;

	for (unsigned i = 0; i < s->lst->nbackends; i++) {
		struct bpool *p = bpool_get(s->w, &s->cfg->backends[s->lst->backends[i]], s->cfg);

		if (!p->caps_known) {
			/*
			 * Not learned yet (the backend was down when the worker
			 * started, say): a link now, so that later sessions know.
			 */
			bpool_prewarm(p);
			all = 0;
		} else if (!(p->caps & cap)) {
			all = 0;
		}
	}
	return all;
}

/*
 * The client pipelined a RCPT behind this MAIL, and the listener's
 * backends offer PIPELINING: MAIL is worth holding until the store has
 * answered its rate check (send_ahead needs that answer), as the group
 * then costs the store's round trip and one backend round trip, where
 * MAIL at once would cost the longer of the two and one more round trip
 * for each RCPT and DATA.
 */
static int
group_follows(struct session *s)
{
	const char *start = s->in + s->in_pos;
	size_t avail = s->in_len > s->in_pos ? s->in_len - s->in_pos : 0;

	if (avail < 5 || strncasecmp(start, "RCPT ", 5) != 0 || memchr(start, '\n', avail) == NULL)
		return 0;
	return backends_offer(s, BCAP_PIPELINING);
}

/*
 * A command that went ahead will not be claimed as sent (refused by a
 * check that should have kept it back, or a bug): the backend may have
 * taken it, a recipient say, so the link goes and the transaction cannot
 * go on.
 */
static void
ahead_abandon(struct session *s, const char *why)
{
	struct txn *t = &s->tx;

	if (t->ahead_used >= t->nahead || t->link == NULL)
		return;
	log_error("conn=%s backend=%s command sent ahead %s; link closed", s->id,
		  t->link->pool->name, why);
	blink_abort(t->link);
	t->link = NULL;
	t->link_lost = 1;
	t->nahead = t->ahead_used = 0;
}

/* Sends a command, or claims its reply when it went ahead. */
static void
link_command(struct session *s, const char *line, size_t len, blink_reply_fn *fn)
{
	struct txn *t = &s->tx;

	if (t->ahead_used < t->nahead) {
		if (t->ahead[t->ahead_used] != line_hash(line, len)) {
			/* Not the command that went ahead: its reply must answer nothing. */
			ahead_abandon(s, "does not match this command");
			fn(NULL, s, -EPROTO, "", 0);
			return;
		}
		t->ahead_used++;
		blink_claim(t->link, fn, s, 0);
		return;
	}
	blink_command(t->link, line, len, fn, s, 0);
}

/* Both sides are known. text/len: the backend's reply, or NULL for the one kept. */
static void
mail_answer(struct session *s, const char *text, size_t len)
{
	struct txn *t = &s->tx;
	int code = t->mail_code;

	if (text == NULL) {
		text = t->mail_reply ? t->mail_reply : "";
		len = t->mail_reply ? t->mail_reply_len : 0;
	}
	if (t->mail_verdict != POLICY_OK) {
		if (t->link) {
			/* Accepted there, refused here: RSET before the link goes back to the pool. */
			blink_release(t->link, 1);
			t->link = NULL;
		}
		if (t->mail_verdict == POLICY_LIMITED)
			session_reply(s, "451 4.7.1 Error: too many messages from %s; try again later", s->peer_ip);
		else
			session_reply(s, "451 4.7.1 Error: cannot check the message rate now; try again later");
		txn_log(s, "tempfail", t->mail_verdict == POLICY_LIMITED ? "message rate" : "store failure");
		txn_end(s, LINK_CLEAN);
	} else if (code >= 200 && code < 300) {
		relay_reply(s, text, len, code);
		free(t->mail_reply);
		t->mail_reply = NULL;
		t->mail_reply_len = 0;
		/* No longer parked: the link is the transaction's, held between commands. */
		t->active = 1;
		txn_hold_link(s);
	} else if (code > 0) {
		relay_reply(s, text, len, code);
		txn_end(s, LINK_CLEAN);
	} else {
		session_reply(s, "%s", t->mail_fail ? t->mail_fail :
			      "451 4.4.1 Error: no backend available; try again later");
		txn_end(s, LINK_CLEAN);
	}
	session_resume_commands(s);
}

static void mail_backend_lost(struct session *s);

/*
 * The link failed, or spoke unasked (a 421), after it accepted MAIL and
 * before the policy answered: another link is tried, as for a link that
 * dies before its MAIL reply.
 */
static void
on_mail_parked(struct blink *l, void *owner, int code, const char *text, size_t len)
{
	struct session *s = owner;
	struct txn *t = &s->tx;

	(void)text;
	(void)len;
	if (code >= 0)
		blink_abort(l);
	t->link = NULL;
	free(t->mail_reply);
	t->mail_reply = NULL;
	t->mail_reply_len = 0;
	t->mail_code = 0;
	t->mail_wait |= MW_BACKEND;
	mail_backend_lost(s);
}

/*
 * The backend's side is known: code > 0 is its reply to MAIL (text,
 * len); 0 means no backend took it (fail: our reply, NULL: none available).
 */
static void
mail_backend_done(struct session *s, int code, const char *text, size_t len, const char *fail)
{
	struct txn *t = &s->tx;

	t->mail_wait &= ~MW_BACKEND;
	t->mail_code = code;
	t->mail_fail = fail;
	if (code > 0 && (code < 200 || code >= 300) && t->link) {
		/* Refused there: the link holds no transaction and may serve others now. */
		blink_release(t->link, 0);
		t->link = NULL;
	}
	if (!(t->mail_wait & MW_POLICY)) {
		mail_answer(s, text, len);
		return;
	}
	/* The policy's answer is due: keep the reply, and hear of the link meanwhile. */
	if (code > 0 && len) {
		t->mail_reply = malloc(len);
		if (t->mail_reply) {	/* else relay_reply says "2.0.0 Ok" / "4.0.0 Error" itself */
			memcpy(t->mail_reply, text, len);
			t->mail_reply_len = len;
		}
	}
	if (t->link)
		blink_expect(t->link, on_mail_parked, s, BLINK_NO_TIMEOUT);
}

/*
 * The link was lost, before its MAIL reply (a pooled link can die quietly
 * while idle) or parked after it: another link is tried.
 */
static void
mail_backend_lost(struct session *s)
{
	struct txn *t = &s->tx;

	/* Another link, unless the policy has already refused. */
	if (++t->mail_attempts < 3 && ((t->mail_wait & MW_POLICY) || t->mail_verdict == POLICY_OK)) {
		t->acq = backend_acquire(s->w, s->cfg, s->lst, s, link_ready);
		return;
	}
	mail_backend_done(s, 0, NULL, 0, NULL);
}

static void
on_mail_reply(struct blink *l, void *owner, int code, const char *text, size_t len)
{
	struct session *s = owner;

	(void)l;
	if (code < 0) {
		s->tx.link = NULL;
		mail_backend_lost(s);
		return;
	}
	mail_backend_done(s, code, text, len, NULL);
}

static void
send_mail(struct session *s)
{
	struct blink *l = s->tx.link;

	blink_write_line(l, s->tx.mail_line, s->tx.mail_len);
	send_ahead(s, l);
	conn_flush(&l->conn);
	blink_expect(l, on_mail_reply, s, 0);
}

/* After XCLIENT's new greeting the backend wants EHLO again; then MAIL. */
static void
on_forward_ehlo_reply(struct blink *l, void *owner, int code, const char *text, size_t len)
{
	struct session *s = owner;

	(void)text;
	(void)len;
	if (code < 0) {
		on_mail_reply(l, owner, code, "", 0);
		return;
	}
	if (code != 250)
		log_warn("conn=%s backend=%s EHLO after XCLIENT refused with %d", s->id, l->pool->name, code);
	send_mail(s);
}

static void
on_forward_reply(struct blink *l, void *owner, int code, const char *text, size_t len)
{
	struct session *s = owner;
	char line[300];

	(void)text;
	(void)len;
	if (code < 0) {
		on_mail_reply(l, owner, code, "", 0);
		return;
	}
	if (l->no_reuse) {
		if (code == 220) {
			snprintf(line, sizeof(line), "EHLO %s", l->pool->ehlo);
			blink_command(l, line, strlen(line), on_forward_ehlo_reply, s, 0);
			return;
		}
		/*
		 * Sending on would make the backend take mxgate, often a trusted
		 * address, for the client: better a temporary failure.
		 */
		log_warn("conn=%s backend=%s XCLIENT refused with %d", s->id, l->pool->name, code);
		blink_abort(l);
		s->tx.link = NULL;
		mail_backend_done(s, 0, NULL, 0,
				  "451 4.4.1 Error: backend refused the client's identity; try again later");
		return;
	} else if (code != 250) {
		/* The message still goes; the backend just logs mxgate as the client. */
		log_warn("conn=%s backend=%s XFORWARD refused with %d", s->id, l->pool->name, code);
	}
	send_mail(s);
}

/* XFORWARD's reply, MAIL's on its heels (forward_client). */
static void
on_forward_ahead_reply(struct blink *l, void *owner, int code, const char *text, size_t len)
{
	struct session *s = owner;

	if (code < 0) {
		on_mail_reply(l, owner, code, text, len);
		return;
	}
	if (code != 250)
		log_warn("conn=%s backend=%s XFORWARD refused with %d", s->id, l->pool->name, code);
	blink_claim(l, on_mail_reply, s, 0);
}

/*
 * Tells the backend who the real client is, when configured and offered.
 * Returns 1 when a command went out (its reply goes on), 0 when MAIL can
 * go at once, -1 when the transaction was refused here.
 */
static int
forward_client(struct session *s, struct blink *l)
{
	struct forward_info fi = {
		.addr = s->peer_ip, .port = s->peer_port, .helo = s->helo_name,
		.proto = session_proto(s), .login = s->auth_user[0] ? s->auth_user : NULL,
	};
	char line[SMTP_LINE_MAX];
	const char *verb;
	unsigned attrs;
	int n, xclient = 0;

	if (l->pool->forward == CFG_FORWARD_XFORWARD && (l->caps & BCAP_XFORWARD)) {
		verb = "XFORWARD";
		attrs = l->xforward_attrs;
	} else if (l->pool->forward == CFG_FORWARD_XCLIENT && (l->caps & BCAP_XCLIENT)) {
		verb = "XCLIENT";
		xclient = 1;
		attrs = l->xclient_attrs;
		/* Postfix's XCLIENT takes SMTP or ESMTP only (501 for ESMTPSA). */
		fi.proto = s->esmtp ? "ESMTP" : "SMTP";
	} else {
		return 0;
	}
	n = envelope_forward_line(verb, attrs, &fi, line, sizeof(line));
	if (n < 0) {
		/* A HELO long enough to push the line past 512 octets must not hide ADDR and LOGIN. */
		fi.helo = NULL;
		n = envelope_forward_line(verb, attrs, &fi, line, sizeof(line));
	}
	if (n <= 0) {
		log_warn("conn=%s backend=%s %s line does not fit in 512 octets", s->id,
			 l->pool->name, verb);
		if (!xclient)
			return 0;	/* XFORWARD only informs the backend's logs */
		blink_abort(l);
		s->tx.link = NULL;
		mail_backend_done(s, 0, NULL, 0, "451 4.4.1 Error: cannot pass the client's identity to the backend");
		return -1;
	}
	if (xclient) {
		l->no_reuse = 1;
	} else if (l->caps & BCAP_PIPELINING) {
		/* XFORWARD's reply only feeds a log line: MAIL need not wait for it. */
		blink_write_line(l, line, (size_t)n);
		blink_presend(l, s->tx.mail_line, s->tx.mail_len);
		send_ahead(s, l);
		conn_flush(&l->conn);
		blink_expect(l, on_forward_ahead_reply, s, 0);
		return 1;
	}
	blink_command(l, line, (size_t)n, on_forward_reply, s, 0);
	return 1;
}

static void
link_ready(void *owner, struct blink *l)
{
	struct session *s = owner;

	s->tx.acq = NULL;
	if (l == NULL) {
		log_warn("conn=%s client=%s no backend reachable for MAIL", s->id, s->peer_str);
		mail_backend_done(s, 0, NULL, 0, NULL);
		return;
	}
	s->tx.link = l;
	snprintf(s->tx.backend, sizeof(s->tx.backend), "%s", l->pool->name);
	if (forward_client(s, l) == 0)
		send_mail(s);
}

/* The policy's side of MAIL. */
static void
mail_checked(struct session *s, enum policy_verdict v)
{
	struct txn *t = &s->tx;

	t->mail_wait &= ~MW_POLICY;
	t->mail_verdict = (int)v;
	if (t->mail_launching)
		return;		/* cmd_mail goes on from here */
	if (t->mail_deferred) {
		t->mail_deferred = 0;
		if (v == POLICY_OK) {
			t->acq = backend_acquire(s->w, s->cfg, s->lst, s, link_ready);
			return;
		}
		t->mail_wait &= ~MW_BACKEND;	/* refused before any backend was asked */
		mail_answer(s, NULL, 0);
		return;
	}
	if (v != POLICY_OK && t->acq) {
		/* Still no link: nothing to wait for at the backend. */
		backend_acquire_cancel(t->acq);
		t->acq = NULL;
		t->mail_wait &= ~MW_BACKEND;
	}
	if (t->mail_wait == 0)
		mail_answer(s, NULL, 0);
}

/* ---- commands ---- */

static void
rcpt_checked(struct session *s, enum policy_verdict v)
{
	struct txn *t = &s->tx;

	if (v != POLICY_OK) {
		ahead_abandon(s, "refused here");
		if (v == POLICY_LIMITED)
			session_reply(s, "451 4.7.1 Error: too many recipients from %s; try again later", s->peer_ip);
		else
			session_reply(s, "451 4.7.1 Error: cannot check the recipient rate now; try again later");
		if (t->rcpts_ok == 0)
			t->first_rcpt[0] = '\0';
		session_resume_commands(s);
		return;
	}
	if (txn_link_lost(s)) {
		session_resume_commands(s);
		return;
	}
	link_command(s, t->rcpt_line, t->rcpt_len, on_rcpt_reply);
}

static void
cmd_helo(struct session *s, const struct smtp_cmd *cmd)
{
	size_t n = MIN(cmd->arg.len, sizeof(s->helo_name) - 1);

	txn_end(s, LINK_DIRTY);
	memcpy(s->helo_name, cmd->arg.p, n);
	s->helo_name[n] = '\0';
	s->helo = 1;
	s->esmtp = cmd->verb == SMTP_EHLO;
	s->dsn = 0;
	if (!s->esmtp) {
		session_reply(s, "250 %s", s->cfg->hostname);
		return;
	}
	session_reply(s, "250-%s", s->cfg->hostname);
	session_reply(s, "250-PIPELINING");
	session_reply(s, "250-SIZE %llu", (unsigned long long)s->cfg->max_message_size);
	session_reply(s, "250-8BITMIME");
	session_reply(s, "250-SMTPUTF8");
	/*
	 * DSN only when every backend of the listener supports it; what EHLO
	 * offered is what MAIL and RCPT accept for the rest of the session.
	 */
	s->dsn = backends_offer(s, BCAP_DSN);
	if (s->dsn)
		session_reply(s, "250-DSN");
	if (s->lst->tls == CFG_TLS_STARTTLS && !s->tls)
		session_reply(s, "250-STARTTLS");
	/* RFC 8314 / Postfix smtpd_tls_auth_only: no password ever crosses in clear. */
	if (s->cfg->auth.enabled && s->tls && !s->auth_user[0])
		session_reply(s, "250-AUTH %s", session_auth_mechs(s));
	session_reply(s, "250 ENHANCEDSTATUSCODES");
}

static void
cmd_mail(struct session *s, const struct smtp_cmd *cmd)
{
	struct txn *t = &s->tx;
	struct env_verdict v;
	int n;

	if (!s->helo) {
		session_reply_error(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (t->active) {
		session_reply_error(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (s->lst->require_tls && !s->tls) {
		session_reply_error(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (s->lst->mode == CFG_MODE_SUBMISSION && !s->auth_user[0]) {
		session_reply_error(s, "530 5.7.0 Authentication required");
		return;
	}
	n = envelope_mail(cmd, s->cfg->max_message_size, s->dsn, t->mail_line,
			  sizeof(t->mail_line), &v);
	if (n < 0) {
		if (v.code == 552)
			session_reply(s, "552 %s", v.text);
		else
			session_reply_error(s, "%d %s", v.code, v.text);
		return;
	}
	t->mail_len = (size_t)n;
	t->size_declared = v.size;
	t->start_ms = timer_now_ms();
	n = (int)MIN(cmd->path.len, sizeof(t->from) - 1);
	memcpy(t->from, cmd->path.p, (size_t)n);
	t->from[n] = '\0';
	worker_txn_id(s->w, t->id);
	s->phase = PH_WAIT;
	t->mail_wait = MW_POLICY | MW_BACKEND;
	t->mail_launching = 1;
	policy_mail(s, mail_checked);
	t->mail_launching = 0;
	if (!(t->mail_wait & MW_POLICY) && t->mail_verdict != POLICY_OK) {
		/* Refused at once (embedded store): no backend is asked. */
		t->mail_wait = 0;
		mail_answer(s, NULL, 0);
		return;
	}
	if ((t->mail_wait & MW_POLICY) && group_follows(s)) {
		t->mail_deferred = 1;
		return;
	}
	t->acq = backend_acquire(s->w, s->cfg, s->lst, s, link_ready);
}

static void
cmd_rcpt(struct session *s, const struct smtp_cmd *cmd)
{
	struct txn *t = &s->tx;
	char line[SMTP_LINE_MAX + 64];
	int n;

	if (!t->active) {
		session_reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (txn_link_lost(s))
		return;
	n = rcpt_local(s, cmd, t->rcpts_ok, line, sizeof(line), 1);
	if (n < 0) {
		ahead_abandon(s, "refused here");
		return;
	}
	t->rcpts_tried++;
	if (t->rcpts_ok == 0) {
		size_t k = MIN(cmd->path.len, sizeof(t->first_rcpt) - 1);
		memcpy(t->first_rcpt, cmd->path.p, k);
		t->first_rcpt[k] = '\0';
	}
	memcpy(t->rcpt_line, line, (size_t)n);
	t->rcpt_len = (size_t)n;
	s->phase = PH_WAIT;
	policy_rcpt(s, rcpt_checked);
}

static void
cmd_data(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	if (!s->tx.active) {
		session_reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->tx.rcpts_ok == 0) {
		/* Every recipient refused: the backend's answer to a DATA sent ahead is dropped. */
		if (s->tx.ahead_used < s->tx.nahead && s->tx.link) {
			s->tx.ahead_used++;
			blink_disown(s->tx.link);
		}
		session_reply_error(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (txn_link_lost(s))
		return;
	s->phase = PH_WAIT;
	/* A DATA sent ahead has its reply due: that one is claimed. */
	if (s->tx.ahead_used == s->tx.nahead && data_hold_begin(s))
		return;
	link_command(s, "DATA", 4, data_cmd_reply);
}

static void
cmd_rset(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	txn_end(s, LINK_DIRTY);
	session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "221 2.0.0 Bye");
	session_close(s, "quit");
}

static void
cmd_vrfy(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	/* RFC 5321 3.5.3: 252 when the address cannot be checked but will be tried. */
	session_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_expn(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "502 5.5.1 Error: EXPN not supported");
}

static void
cmd_help(struct session *s, const struct smtp_cmd *cmd)
{
	(void)cmd;
	session_reply(s, "214-2.0.0 Commands supported:");
	session_reply(s, "214 2.0.0 HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
}

static void
cmd_not_implemented(struct session *s, const struct smtp_cmd *cmd)
{
	session_reply_error(s, "502 5.5.1 Error: %s not implemented", smtp_verb_name(cmd->verb));
}

/* RFC 3207. The 220 goes out in clear; everything after it is TLS. */
static void
cmd_starttls(struct session *s, const struct smtp_cmd *cmd)
{
	int rc;

	if (s->lst->tls != CFG_TLS_STARTTLS) {
		session_reply_error(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (s->tls) {
		session_reply_error(s, "554 5.5.1 Error: TLS already active");
		return;
	}
	if (cmd->arg.len) {
		session_reply_error(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	txn_end(s, LINK_DIRTY);
	session_reply(s, "220 2.0.0 Ready to start TLS");
	rc = conn_tls_start(&s->conn, assets_of(s->cfg)->server, 1, NULL);
	if (rc < 0) {
		log_error("conn=%s cannot start TLS (%s)", s->id, conn_tls_start_error(rc));
		session_close(s, "tls setup failed");
		return;
	}
	conn_flush(&s->conn);
	/* session_process drops whatever else the client sent with the command. */
	s->phase = PH_TLS;
	session_timer(s, MIN(s->cfg->timeout_command_ms, TLS_HANDSHAKE_MS));
}

typedef void cmd_fn(struct session *s, const struct smtp_cmd *cmd);

/* One row per verb; NULL = not recognised in this protocol. */
static cmd_fn *const cmd_table[SMTP_VERB_COUNT] = {
	[SMTP_HELO] = cmd_helo,
	[SMTP_EHLO] = cmd_helo,
	[SMTP_MAIL] = cmd_mail,
	[SMTP_RCPT] = cmd_rcpt,
	[SMTP_DATA] = cmd_data,
	[SMTP_BDAT] = cmd_not_implemented,
	[SMTP_RSET] = cmd_rset,
	[SMTP_NOOP] = cmd_noop,
	[SMTP_QUIT] = cmd_quit,
	[SMTP_VRFY] = cmd_vrfy,
	[SMTP_EXPN] = cmd_expn,
	[SMTP_HELP] = cmd_help,
	[SMTP_STARTTLS] = cmd_starttls,
	[SMTP_AUTH] = session_auth_command,
};

static void
session_command(struct session *s, const char *line, size_t len)
{
	struct smtp_cmd cmd;
	const char *why = NULL;
	enum smtp_parse_status st;

	if (s->auth_step) {
		session_auth_line(s, line, len);
		return;
	}
	st = smtp_parse_line(line, len, &cmd, &why);

	if (s->w->stopping && !s->tx.active && !(st == SMTP_PARSE_OK && cmd.verb == SMTP_QUIT)) {
		session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel", s->cfg->hostname);
		session_close(s, "shutdown");
		return;
	}
	if (s->denied && !(st == SMTP_PARSE_OK && cmd.verb == SMTP_QUIT)) {
		/* RFC 5321 3.1: after a 554 greeting, 503 to everything but QUIT. */
		session_reply_error(s, "503 5.5.1 Error: access denied, only QUIT is allowed");
		return;
	}
	switch (st) {
	case SMTP_PARSE_OK:
		break;
	case SMTP_PARSE_BAD_CHAR:
		session_reply_error(s, "500 5.5.2 Error: bad character in command line");
		return;
	case SMTP_PARSE_UNKNOWN:
		session_reply_error(s, "500 5.5.2 Error: command not recognized");
		return;
	case SMTP_PARSE_SYNTAX:
		if (cmd.verb == SMTP_MAIL)
			session_reply_error(s, "501 5.1.7 %s", why ? why : "Bad sender address syntax");
		else if (cmd.verb == SMTP_RCPT)
			session_reply_error(s, "501 5.1.3 %s", why ? why : "Bad recipient address syntax");
		else
			session_reply_error(s, "501 5.5.4 %s", why ? why : "Syntax error");
		return;
	}
	if (cmd.verb >= SMTP_VERB_COUNT || cmd_table[cmd.verb] == NULL) {
		session_reply_error(s, "500 5.5.2 Error: command not recognized");
		return;
	}
	if (s->cfg->max_junk_commands && is_junk(cmd.verb) && ++s->junk > s->cfg->max_junk_commands &&
	    count_error(s))
		return;
	cmd_table[cmd.verb](s, &cmd);
}

/*
 * RFC 4954 4: an AUTH command with its initial response, and the answers
 * to 334, may be longer than other commands (12288 octets there; enough
 * here for the longest name and password mxgate accepts, base64-encoded).
 */
static size_t
line_max(const struct session *s, const char *p, size_t avail)
{
	if (s->auth_step || (avail >= 5 && strncasecmp(p, "AUTH ", 5) == 0))
		return AUTH_LINE_MAX;
	return SMTP_LINE_MAX;
}

void
session_process(struct session *s)
{
	size_t off = 0;

	if (s->processing)
		return;
	s->processing = 1;
	while (s->phase == PH_CMD && conn_queued(&s->conn) < OUT_PAUSE_AT) {
		char line[AUTH_LINE_MAX + 1];
		size_t n, max = line_max(s, s->in + off, s->in_len - off);
		const char *start = in_line(s, &off, &n);

		if (start == NULL) {
			/* RFC 5321 4.5.3.1.4: 512 octets with CRLF; longer ones are dropped up to LF. */
			if (s->in_len - off > max - 1) {
				s->discarding = 1;
				off = s->in_len;
			}
			break;
		}
		/* Counted as if CRLF-terminated, whatever the client used. */
		if (s->discarding || n + 2 > max) {
			s->discarding = 0;
			session_reply_error(s, "500 5.5.2 Error: line too long");
			continue;
		}
		memcpy(line, start, n);
		line[n] = '\0';
		s->in_pos = off;
		session_command(s, line, n);
	}
	s->in_pos = 0;
	if (s->phase == PH_TLS) {
		/*
		 * STARTTLS injection (CVE-2011-0411): text sent in clear after
		 * the command must never run as if it came under TLS.
		 */
		if (s->in_len > off)
			log_warn("conn=%s client=%s discarded %zu bytes sent after STARTTLS",
				 s->id, s->peer_str, s->in_len - off);
		s->in_len = 0;
		off = 0;
	}
	/* Keep what was not consumed (the next lines of a pipelined group, or a partial line). */
	if (off) {
		if (s->in && off < s->in_len)
			memmove(s->in, s->in + off, s->in_len - off);
		s->in_len = off < s->in_len ? s->in_len - off : 0;
	}
	if (s->phase == PH_CMD) {
		if (s->in_len == 0 && s->in_cap > 4096) {
			free(s->in);
			s->in = NULL;
			s->in_cap = 0;
		}
		if (s->w->stopping && !s->tx.active && s->in_len == 0)
			session_timer(s, MIN(s->cfg->timeout_command_ms, DRAIN_LINGER_MS));
		else
			session_timer(s, s->cfg->timeout_command_ms);
		conn_flush(&s->conn);
		if (conn_queued(&s->conn) >= OUT_PAUSE_AT) {
			/* Resumed by on_drain once the client has read its replies. */
			s->out_blocked = 1;
			conn_recv_pause(&s->conn);
		} else {
			conn_recv_resume(&s->conn);
		}
	} else if (s->phase == PH_WAIT) {
		timer_cancel(&s->w->ring.timers, &s->timer);
		if (s->in_len > IN_PAUSE_AT)
			conn_recv_pause(&s->conn);
	}
	s->processing = 0;
	if (s->phase == PH_DATA)
		data_pending_input(s);
}

/* ---- connection ---- */

static void
on_recv(struct conn *c, char *data, size_t len, int bid)
{
	struct session *s = c->owner;

	switch (s->phase) {
	case PH_PROXY:
		in_append(s, data, len);
		proxy_header(s);
		break;
	case PH_POLICY:
		in_append(s, data, len);
		if (s->in_len > IN_PAUSE_AT)
			conn_recv_pause(c);
		break;
	case PH_DATA:
		session_data(s, data, len, bid);
		break;
	case PH_CMD:
		in_append(s, data, len);
		session_process(s);
		break;
	case PH_WAIT:
		in_append(s, data, len);
		if (s->in_len > IN_PAUSE_AT)
			conn_recv_pause(c);
		break;
	case PH_TLS:		/* the conn hands nothing over before the handshake ends */
	case PH_CLOSING:
		break;
	}
}

static void
on_drain(struct conn *c)
{
	struct session *s = c->owner;

	if (s->out_blocked) {
		s->out_blocked = 0;
		if (s->phase == PH_CMD)
			session_process(s);
	}
}

static void
on_eof(struct conn *c, int err)
{
	struct session *s = c->owner;

	if (s->phase == PH_DATA || (s->phase == PH_WAIT && s->tx.link)) {
		if (s->tx.id[0])
			txn_log(s, "aborted", "client disconnected");
		txn_end(s, LINK_ABORT);
	}
	if (s->phase != PH_CLOSING) {
		s->phase = PH_CLOSING;
		s->close_reason = err ? "error" : "disconnected";
		txn_end(s, LINK_DIRTY);
		policy_session_end(s);
		timer_cancel(&s->w->ring.timers, &s->timer);
	}
	conn_close(c);
}

void
session_close(struct session *s, const char *reason)
{
	if (s->phase == PH_CLOSING)
		return;
	/* A link still waiting for a reply or inside DATA cannot be reused. */
	txn_end(s, (s->phase == PH_DATA || s->phase == PH_WAIT) ? LINK_ABORT : LINK_DIRTY);
	s->phase = PH_CLOSING;
	s->close_reason = reason;
	timer_cancel(&s->w->ring.timers, &s->timer);
	/* Free the concurrency slot now: the store hears it before the client hears 221. */
	policy_session_end(s);
	conn_close_after_send(&s->conn);
}

static void
on_closed(struct conn *c)
{
	struct session *s = c->owner;
	char helo[100];

	log_info("conn id=%s client=%s %s listener=%s helo=%s messages=%u errors=%u in=%llu out=%llu ms=%llu reason=%s",
		 s->id, s->peer_str, s->tls_info[0] ? s->tls_info : "tls=-", s->lst->name,
		 s->helo ? log_escape(helo, sizeof(helo), s->helo_name, strlen(s->helo_name)) : "-",
		 s->messages, s->errors, (unsigned long long)c->bytes_in,
		 (unsigned long long)c->bytes_out, (unsigned long long)(timer_now_ms() - s->start_ms),
		 s->close_reason ? s->close_reason : "closed");
	timer_cancel(&s->w->ring.timers, &s->timer);
	policy_session_end(s);
	worker_session_del(s->w, s);
	free(s->in);
	s->in = NULL;
	/* A password check on the offload pool still points here: it frees s when done. */
	if (session_auth_defer_free(s))
		return;
	config_unref(s->cfg);
	free(s);
}

static void
session_timeout(struct timer *t)
{
	struct session *s = container_of(t, struct session, timer);

	if (s->w->stopping && s->phase == PH_CMD && !s->tx.active) {
		session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel", s->cfg->hostname);
		session_close(s, "shutdown");
		return;
	}
	if (s->phase == PH_PROXY && s->proxy_auto && s->in_len == 0) {
		/* No header came: a direct client waiting for the greeting. */
		session_connected(s);
		return;
	}
	if (s->phase == PH_TLS) {
		log_info("conn=%s client=%s TLS handshake timeout", s->id, s->peer_str);
		s->phase = PH_CMD;
		session_close(s, "tls timeout");
		conn_close(&s->conn);	/* nothing can be said outside the handshake */
		return;
	}
	if (s->phase == PH_PROXY || s->phase == PH_POLICY) {
		log_info("conn=%s client=%s %s timeout before the greeting", s->id, s->peer_str,
			 s->phase == PH_PROXY ? "PROXY header" : "policy");
		session_close(s, "timeout");
		return;
	}
	if (s->phase == PH_DATA && s->tx.id[0])
		txn_log(s, "aborted", "data timeout");
	session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
	session_close(s, "timeout");
}

static void
connect_checked(struct session *s, enum policy_verdict v)
{
	switch (v) {
	case POLICY_OK:
		session_reply(s, "220 %s ESMTP mxgate", s->cfg->hostname);
		break;
	case POLICY_DENIED:
		log_info("conn=%s client=%s denied by [access]", s->id, s->peer_str);
		session_reply(s, "554 5.7.1 %s Error: %s: client host rejected: access denied",
		      s->cfg->hostname, s->peer_ip);
		break;
	case POLICY_LIMITED:
		log_info("conn=%s client=%s refused: connection rate or concurrency limit", s->id, s->peer_str);
		session_reply(s, "421 4.7.0 %s Error: too many connections from %s; try again later",
		      s->cfg->hostname, s->peer_ip);
		s->phase = PH_CMD;
		session_close(s, "limit");
		return;
	case POLICY_TEMPFAIL:
		session_reply(s, "421 4.7.0 %s Error: cannot check connection limits now; try again later",
		      s->cfg->hostname);
		s->phase = PH_CMD;
		session_close(s, "store failure");
		return;
	}
	s->phase = PH_CMD;
	session_process(s);
}

static void
on_tls(struct conn *c, int err)
{
	struct session *s = c->owner;
	const char *sni;

	if (s->phase != PH_TLS)
		return;
	if (err) {
		log_info("conn=%s client=%s TLS handshake failed: %s", s->id, s->peer_str,
			 conn_tls_error(c));
		s->phase = PH_CMD;
		session_close(s, "tls handshake failed");
		conn_close(c);
		return;
	}
	s->tls = 1;
	sni = conn_tls_sni(c);
	/* Logged with the connection's summary line: one log write per connection, not two. */
	snprintf(s->tls_info, sizeof(s->tls_info), "tls=%s cipher=%s resumed=%s sni=%s",
		 conn_tls_version(c), conn_tls_cipher(c), conn_tls_resumed(c) ? "yes" : "no",
		 sni ? sni : "-");
	if (s->lst->tls == CFG_TLS_IMPLICIT) {
		/* The handshake came first: now the connect checks and the greeting. */
		session_connected(s);
		return;
	}
	/* RFC 3207 4.2: forget what was said in clear; the client must EHLO again. */
	s->helo = s->esmtp = s->dsn = 0;
	s->helo_name[0] = '\0';
	s->in_len = 0;
	s->phase = PH_CMD;
	session_process(s);
}

/* The client is known (peer or PROXY header): run the connect checks, then greet. */
static void
session_connected(struct session *s)
{
	if (s->lst->tls == CFG_TLS_IMPLICIT && !s->tls) {
		/* RFC 8314: the handshake comes first; a PROXY header's leftovers are its start. */
		int rc = conn_tls_start(&s->conn, assets_of(s->cfg)->server, 1, NULL);

		if (rc == 0 && s->in_len && conn_tls_push_input(&s->conn, s->in, s->in_len) < 0)
			rc = -ENOMEM;
		if (rc < 0) {
			log_error("conn=%s cannot start TLS (%s)", s->id, conn_tls_start_error(rc));
			s->phase = PH_CMD;
			session_close(s, "tls setup failed");
			return;
		}
		s->in_len = 0;
		s->phase = PH_TLS;
		session_timer(s, MIN(s->cfg->timeout_command_ms, TLS_HANDSHAKE_MS));
		return;
	}
	s->phase = PH_POLICY;
	session_timer(s, s->cfg->timeout_command_ms);
	policy_connect(s, connect_checked);
}

static void
proxy_header(struct session *s)
{
	int allow = s->lst->proxy_protocol == CFG_PROXY_V1 ? PP_ALLOW_V1 :
		    s->lst->proxy_protocol == CFG_PROXY_V2 ? PP_ALLOW_V2 : PP_ALLOW_V1 | PP_ALLOW_V2;
	struct pp_result pp;

	switch (pp_parse(s->in, s->in_len, allow, &pp)) {
	case PP_AGAIN:
		if (s->proxy_auto)	/* bytes came: it is a header, give it the full deadline */
			session_timer(s, s->lst->proxy_timeout_ms);
		return;
	case PP_INVALID:
		log_warn("conn=%s client=%s bad PROXY protocol header", s->id, s->peer_str);
		s->phase = PH_CMD;
		session_close(s, "bad PROXY header");
		return;
	case PP_OK:
		break;
	}
	if (!pp.local) {
		s->client = pp.src;
		net_addr_ip(&s->client, s->peer_ip, sizeof(s->peer_ip));
		net_addr_format(&s->client, s->peer_str, sizeof(s->peer_str));
		s->peer_port = s->client.u.sa.sa_family == AF_INET ? ntohs(s->client.u.sin.sin_port) :
			       ntohs(s->client.u.sin6.sin6_port);
	}
	/* Whatever followed the header is the client's own. */
	memmove(s->in, s->in + pp.used, s->in_len - pp.used);
	s->in_len -= pp.used;
	session_connected(s);
}

void
session_new(struct worker *w, int fd, const struct net_addr *peer,
	    struct config *cfg, const struct cfg_listener *lst)
{
	struct session *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		close(fd);
		return;
	}
	net_set_nodelay(fd);
	conn_init(&s->conn, &w->ring, fd, &session_ops, s);
	s->w = w;
	config_ref(cfg);
	s->cfg = cfg;
	s->lst = lst;
	s->start_ms = timer_now_ms();
	timer_init(&s->timer, session_timeout);
	net_addr_ip(peer, s->peer_ip, sizeof(s->peer_ip));
	s->peer_port = peer->u.sa.sa_family == AF_INET ? ntohs(peer->u.sin.sin_port) :
		       peer->u.sa.sa_family == AF_INET6 ? ntohs(peer->u.sin6.sin6_port) : 0;
	net_addr_format(peer, s->peer_str, sizeof(s->peer_str));
	s->client = *peer;
	timer_init(&s->lease_timer, NULL);
	worker_txn_id(w, s->id);
	worker_session_add(w, s);
	conn_recv_start(&s->conn);
	if (lst->proxy_protocol != CFG_PROXY_OFF) {
		int trusted = cidr_list_match(&lst->proxy_trusted_nets, peer);

		if (trusted) {
			s->phase = PH_PROXY;
			s->proxy_auto = lst->proxy_protocol == CFG_PROXY_AUTO;
			session_timer(s, s->proxy_auto ? MIN(PROXY_AUTO_WAIT_MS, lst->proxy_timeout_ms) :
				      lst->proxy_timeout_ms);
			return;
		}
		if (lst->proxy_protocol != CFG_PROXY_AUTO) {
			log_warn("conn=%s client=%s refused: not in proxy_trusted of listener %s",
				 s->id, s->peer_str, lst->name);
			s->phase = PH_CMD;
			session_close(s, "untrusted proxy");
			return;
		}
	}
	session_connected(s);
}

void
session_shutdown(struct session *s)
{
	if (s->phase == PH_PROXY || s->phase == PH_POLICY || s->phase == PH_TLS) {
		session_close(s, "shutdown");
		return;
	}
	if (s->phase == PH_CMD && !s->tx.active && s->in_len == 0) {
		session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel", s->cfg->hostname);
		session_close(s, "shutdown");
	}
}

void
session_kill(struct session *s)
{
	if (s->phase == PH_CLOSING) {
		conn_close(&s->conn);
		return;
	}
	if (s->phase == PH_DATA && s->tx.id[0])
		txn_log(s, "aborted", "shutdown");
	session_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel", s->cfg->hostname);
	session_close(s, "shutdown");
}
