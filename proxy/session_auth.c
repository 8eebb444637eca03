/*
 * session_auth.c - SMTP AUTH (RFC 4954) in the session: the PLAIN and
 * LOGIN exchanges, the password check on the offload pool (yescrypt
 * costs tens of ms by design: it must never run on the ring's thread),
 * and what follows a failure (535, counted, 421 once auth_failure_rate
 * is exceeded). A client whose failure window is full is refused (421)
 * before its password is even checked, so being cut off holds across
 * connections until the window ends.
 *
 * The credentials live in a heap job that the exchange fills and the
 * pool thread reads; the password is wiped as soon as it is checked.
 * A session that closes while its check runs is freed by the check's
 * completion, never under the pool thread's feet.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "assets.h"
#include "auth_users.h"
#include "log.h"
#include "offload.h"
#include "policy.h"
#include "sasl.h"
#include "session_int.h"
#include "worker.h"

enum auth_step { AUTH_NONE = 0, AUTH_PLAIN_WAIT, AUTH_LOGIN_USER, AUTH_LOGIN_PASS, AUTH_PEEKING,
		 AUTH_CHECKING };

struct auth_job {
	struct session *s;
	struct auth_users *users;	/* a reference: a reload may swap the table meanwhile */
	struct sasl_cred cred;
	int ok;				/* the pool thread's verdict; 0 (refused) if it never ran */
	int session_gone;		/* the session closed meanwhile: free it in done */
};

const char *
session_auth_mechs(const struct session *s)
{
	unsigned m = s->cfg->auth.mechanisms;

	return (m & CFG_AUTH_PLAIN) && (m & CFG_AUTH_LOGIN) ? "PLAIN LOGIN" :
	       (m & CFG_AUTH_LOGIN) ? "LOGIN" : "PLAIN";
}

static void
job_free(struct auth_job *j)
{
	sasl_cred_wipe(&j->cred);
	if (j->users)
		auth_users_unref(j->users);
	free(j);
}

/* The exchange ends without a check (abort, malformed, refused to start). */
static void
exchange_end(struct session *s)
{
	if (s->auth_job)
		job_free(s->auth_job);
	s->auth_job = NULL;
	s->auth_step = AUTH_NONE;
}

/* Pool thread; auth_users_check spends the same work on an unknown name, so timing tells nothing. */
static void
auth_work(void *arg)
{
	struct auth_job *j = arg;

	j->ok = auth_users_check(j->users, j->cred.user, j->cred.pass);
	/* The name is still needed (log, backend, Received:); the password is not. */
	explicit_bzero(j->cred.pass, sizeof(j->cred.pass));
	j->cred.pass_len = 0;
}

static void
failure_checked(struct session *s, enum policy_verdict v)
{
	if (v == POLICY_LIMITED) {
		log_warn("conn=%s client=%s too many AUTH failures: closing", s->id, s->peer_str);
		session_reply(s, "421 4.7.0 %s Error: too many authentication failures; try again later",
			      s->cfg->hostname);
		session_close(s, "auth failures");
		return;
	}
	session_reply_error(s, "535 5.7.8 Error: authentication failed");
	session_resume_commands(s);
}

/* Ring thread, after auth_work (or instead of it, at worker exit). */
static void
auth_done(void *arg)
{
	struct auth_job *j = arg;
	struct session *s = j->s;
	char user[300];

	if (j->session_gone) {
		config_unref(s->cfg);
		free(s);
		job_free(j);
		return;
	}
	if (s->w->exiting) {
		/* From offload_q_free after the ring stopped: nothing may be sent any more. */
		s->auth_job = NULL;
		s->auth_step = AUTH_NONE;
		job_free(j);
		return;
	}
	s->auth_job = NULL;
	s->auth_step = AUTH_NONE;
	log_escape(user, sizeof(user), j->cred.user, j->cred.user_len);
	if (j->ok) {
		/* The name stays as sent: the backend and the Received: header get it verbatim. */
		memcpy(s->auth_user, j->cred.user, MIN(j->cred.user_len + 1, sizeof(s->auth_user)));
		s->auth_user[sizeof(s->auth_user) - 1] = '\0';
		log_info("conn=%s client=%s auth=%s ok", s->id, s->peer_str, user);
		session_reply(s, "235 2.7.0 Authentication successful");
		job_free(j);
		session_resume_commands(s);
		return;
	}
	s->auth_failures++;
	log_warn("conn=%s client=%s auth=%s failed (%u in this session)", s->id, s->peer_str, user,
		 s->auth_failures);
	job_free(j);
	policy_auth_failure(s, failure_checked);
}

/* The failure window had room: the password is checked on the pool. */
static void
submit_check(struct session *s)
{
	struct auth_job *j = s->auth_job;

	j->users = auth_users_ref(assets_of(s->cfg)->users);
	j->ok = 0;
	if (offload_submit(s->w->offload, auth_work, auth_done, j) < 0) {
		log_warn("conn=%s client=%s cannot check a password now: %s", s->id, s->peer_str,
			 strerror(errno));
		exchange_end(s);
		session_reply(s, "454 4.7.0 Temporary authentication failure; try again later");
		session_resume_commands(s);
		return;
	}
	s->auth_step = AUTH_CHECKING;
}

static void
peeked(struct session *s, enum policy_verdict v)
{
	if (v == POLICY_LIMITED) {
		/* Cut off earlier (here or on another connection): no more guesses until the window ends. */
		exchange_end(s);
		failure_checked(s, v);
		return;
	}
	if (v == POLICY_TEMPFAIL) {
		exchange_end(s);
		session_reply(s, "454 4.7.0 Temporary authentication failure; try again later");
		session_resume_commands(s);
		return;
	}
	submit_check(s);
}

/*
 * The credentials are complete. The session waits (PH_WAIT) first for
 * the failure window (a store round trip with Redis) and then for the
 * check; pipelined commands stay queued behind it.
 */
static void
start_check(struct session *s)
{
	s->auth_step = AUTH_PEEKING;
	s->phase = PH_WAIT;
	policy_auth_allowed(s, peeked);
}

static void
malformed(struct session *s, const char *what)
{
	exchange_end(s);
	session_reply_error(s, "501 5.5.2 Error: %s", what);
}

void
session_auth_command(struct session *s, const struct smtp_cmd *cmd)
{
	struct sasl_auth_cmd a;
	unsigned enabled;

	if (!s->cfg->auth.enabled) {
		session_reply_error(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (!s->tls) {
		session_reply_error(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (!s->helo || !s->esmtp) {
		session_reply_error(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->auth_user[0]) {
		session_reply_error(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->tx.active) {
		session_reply_error(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (sasl_parse_auth(cmd->arg.p, cmd->arg.len, &a) != SASL_OK) {
		session_reply_error(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	enabled = s->cfg->auth.mechanisms;
	if ((a.mech == SASL_MECH_PLAIN && !(enabled & CFG_AUTH_PLAIN)) ||
	    (a.mech == SASL_MECH_LOGIN && !(enabled & CFG_AUTH_LOGIN)) || a.mech == SASL_MECH_UNKNOWN) {
		session_reply_error(s, "504 5.5.4 Error: unsupported authentication mechanism");
		return;
	}
	s->auth_job = calloc(1, sizeof(*s->auth_job));
	if (s->auth_job == NULL) {
		session_reply(s, "454 4.7.0 Temporary authentication failure; try again later");
		return;
	}
	s->auth_job->s = s;
	if (a.mech == SASL_MECH_PLAIN) {
		if (!a.has_initial) {
			s->auth_step = AUTH_PLAIN_WAIT;
			session_reply(s, "334 ");
			return;
		}
		if (sasl_plain_decode(a.initial, a.initial_len, &s->auth_job->cred) != SASL_OK) {
			malformed(s, "malformed authentication response");
			return;
		}
		start_check(s);
		return;
	}
	if (!a.has_initial) {
		s->auth_step = AUTH_LOGIN_USER;
		session_reply(s, "334 " SASL_LOGIN_PROMPT_USER);
		return;
	}
	if (sasl_login_user(a.initial, a.initial_len, &s->auth_job->cred) != SASL_OK) {
		malformed(s, "malformed authentication response");
		return;
	}
	s->auth_step = AUTH_LOGIN_PASS;
	session_reply(s, "334 " SASL_LOGIN_PROMPT_PASS);
}

void
session_auth_line(struct session *s, const char *line, size_t len)
{
	struct sasl_cred *cred = &s->auth_job->cred;

	if (sasl_is_abort(line, len)) {
		exchange_end(s);
		session_reply_error(s, "501 5.7.0 Error: authentication aborted");
		return;
	}
	switch (s->auth_step) {
	case AUTH_PLAIN_WAIT:
		if (sasl_plain_decode(line, len, cred) != SASL_OK) {
			malformed(s, "malformed authentication response");
			return;
		}
		start_check(s);
		return;
	case AUTH_LOGIN_USER:
		if (sasl_login_user(line, len, cred) != SASL_OK) {
			malformed(s, "malformed authentication response");
			return;
		}
		s->auth_step = AUTH_LOGIN_PASS;
		session_reply(s, "334 " SASL_LOGIN_PROMPT_PASS);
		return;
	case AUTH_LOGIN_PASS:
		if (sasl_login_pass(line, len, cred) != SASL_OK) {
			malformed(s, "malformed authentication response");
			return;
		}
		start_check(s);
		return;
	default:
		exchange_end(s);
		return;
	}
}

int
session_auth_defer_free(struct session *s)
{
	if (s->auth_step == AUTH_CHECKING && s->auth_job) {
		s->auth_job->session_gone = 1;
		return 1;
	}
	exchange_end(s);
	return 0;
}
