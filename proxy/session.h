/*
 * session.h - one client connection: the ESMTP dialog, the transaction
 * it relays to a backend link, and the DATA stream cut through to that
 * link. The session owns its conn, its input buffer, its reference to
 * the config snapshot it started under, and the link while a
 * transaction holds it.
 */
#ifndef PROXY_SESSION_H
#define PROXY_SESSION_H

#include <netinet/in.h>
#include <sys/queue.h>
#include "backend.h"
#include "conn.h"
#include "data_scan.h"
#include "smtp_parse.h"
#include "policy.h"
#include "net.h"
#include "worker.h"

struct worker;

enum session_phase {
	PH_PROXY,	/* reading the PROXY protocol header */
	PH_TLS,		/* TLS handshake (implicit TLS, or after STARTTLS) */
	PH_POLICY,	/* connect checks pending, no greeting yet */
	PH_CMD,		/* reading and answering commands */
	PH_WAIT,	/* a command waits for a backend (link or reply) */
	PH_DATA,	/* message bytes stream to the backend */
	PH_CLOSING,
};

enum data_refusal { DR_NONE = 0, DR_SMUGGLE, DR_SIZE, DR_BACKEND, DR_REPLY };
/* A message held for one BDAT (session_data.c): keeping it, or DATA sent after all, 354 due. */
enum data_hold { HOLD_NONE = 0, HOLD_ON, HOLD_DATA_SENT };

/* Commands sent to the backend ahead of their turn, at most (a longer group waits its turn). */
#define TXN_AHEAD_MAX 16

struct txn {
	int active;			/* MAIL accepted */
	char id[WORKER_TXN_ID_SIZE];
	char from[300];
	char first_rcpt[300];
	unsigned rcpts_ok, rcpts_tried;
	uint64_t size_declared;
	uint64_t bytes;			/* DATA octets from the client */
	uint64_t start_ms;
	struct blink *link;
	int link_lost;			/* the link died between commands (on_link_between) */
	struct bacquire *acq;
	char backend[64];
	struct data_scan scan;
	enum data_refusal refused;
	int mail_attempts;
	char mail_line[SMTP_LINE_MAX + 64];	/* rebuilt MAIL, kept to retry on another link */
	size_t mail_len;
	/* MAIL waits for the policy check and the backend side by side (session.c) */
	unsigned mail_wait;		/* MW_* still to come */
	int mail_launching;		/* cmd_mail is still starting them */
	int mail_deferred;		/* the backend's side waits for the policy's (group_follows) */
	int mail_verdict;		/* enum policy_verdict, once known */
	int mail_code;			/* the backend's reply to MAIL; 0: none (mail_fail says why) */
	const char *mail_fail;		/* our reply when no backend took MAIL (NULL: no backend available) */
	char *mail_reply;		/* the backend's reply, kept while the policy answer is due */
	size_t mail_reply_len;
	int rcpt_prepaid;		/* MAIL paid for one recipient in advance (policy.c) */
	char rcpt_line[SMTP_LINE_MAX + 64];	/* rebuilt RCPT, waiting for the recipient-rate check */
	size_t rcpt_len;
	/* RCPTs and DATA the client pipelined, sent to the backend with MAIL (hash of each line) */
	uint64_t ahead[TXN_AHEAD_MAX];
	unsigned nahead, ahead_used;
	/* the DATA phase (session_data.c) */
	time_t data_at;			/* the client's DATA: the Received: date */
	enum data_hold hold;
	char *held;			/* client octets kept until the end, or the backend's 354 */
	size_t held_len, held_cap;
	const char *held_ref;		/* then these, in pool buffer held_bid (held_ref_len > 0) */
	size_t held_ref_len;
	int held_bid;
	char *refusal;			/* the backend's refusal of a late DATA, said after the data */
	size_t refusal_len;
	int refusal_code;
};

struct session {
	struct conn conn;
	struct worker *w;
	struct config *cfg;
	const struct cfg_listener *lst;
	LIST_ENTRY(session) entry;	/* in worker->sessions */
	struct timer timer;
	char id[WORKER_TXN_ID_SIZE];
	char peer_ip[INET6_ADDRSTRLEN];
	unsigned peer_port;
	char peer_str[NET_ADDR_STRLEN];
	enum session_phase phase;
	char *in;			/* unprocessed client bytes (commands) */
	size_t in_len, in_cap;
	size_t in_pos;			/* while the command loop runs: where the next line starts */
	int discarding;			/* skipping the rest of an over-long line */
	int helo, esmtp;
	int dsn;			/* EHLO offered DSN: its parameters are passed on */
	char helo_name[256];
	unsigned errors, messages;
	unsigned junk;			/* NOOP/VRFY/RSET/HELP since the last accepted message */
	int big_sender;			/* its last message was too long to hold (session_data.c) */
	uint64_t start_ms;
	const char *close_reason;
	/* policy (policy.c) */
	struct net_addr client;		/* the real client: the peer, or the PROXY header's source */
	char client_key[64];		/* limits key: IP, or IPv6 prefix */
	int trusted;			/* [access] allow: no limits */
	int denied;			/* [access] deny: 503 to all but QUIT */
	int lease_held;
	int lease_requested;		/* an acquire went out (its answer may still be on the way) */
	char lease_id[48];
	struct timer lease_timer;	/* refreshes the concurrency lease */
	unsigned policy_pending;
	int policy_result;
	policy_done_fn *policy_done;
	uint64_t policy_token;
	int processing;			/* guard against re-entering the command loop */
	int out_blocked;		/* replies piled up unread: input waits */
	int proxy_auto;			/* proxy_protocol = auto: no header is also fine */
	int tls;			/* TLS is up (implicit, or after STARTTLS) */
	char tls_info[160];		/* "tls=TLSv1.3 cipher=... resumed=no sni=-" for the log */
	/* AUTH (RFC 4954) */
	int auth_step;			/* enum auth_step: waiting for a 334 answer, or checking */
	struct auth_job *auth_job;	/* a password check on the offload pool */
	char auth_user[256];		/* the authenticated login, "" = none */
	unsigned auth_failures;
	struct txn tx;
};

/* Takes ownership of fd; starts the dialog (greeting). */
void session_new(struct worker *w, int fd, const struct net_addr *peer,
		 struct config *cfg, const struct cfg_listener *lst);
/* Worker is stopping: idle sessions get 421 now, busy ones after their transaction. */
void session_shutdown(struct session *s);
/* Drain time is over: close whatever is left. */
void session_kill(struct session *s);

#endif
