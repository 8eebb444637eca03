/*
 * config.h - the configuration snapshot: parsed from the INI file
 * (libinih), validated once, then immutable and shared by every worker.
 * A reload builds a new snapshot; sessions keep a reference to the one
 * they started with, so it is freed when the last of them ends.
 */
#ifndef CONF_CONFIG_H
#define CONF_CONFIG_H

#include <stdint.h>
#include <stddef.h>
#include "net.h"
#include "cidr.h"

enum cfg_mode { CFG_MODE_RELAY = 0, CFG_MODE_SUBMISSION };
enum cfg_tls { CFG_TLS_NONE = 0, CFG_TLS_STARTTLS, CFG_TLS_IMPLICIT };
enum cfg_proxy_proto { CFG_PROXY_OFF = 0, CFG_PROXY_V1, CFG_PROXY_V2, CFG_PROXY_AUTO };
enum cfg_protocol { CFG_PROTO_SMTP = 0, CFG_PROTO_LMTP };
enum cfg_forward { CFG_FORWARD_NONE = 0, CFG_FORWARD_XCLIENT, CFG_FORWARD_XFORWARD };

struct cfg_listener {
	char *name;			/* from [listener NAME] */
	int line;			/* line of the section header */
	struct net_addr *addrs;		/* listen = a, b (at least one) */
	unsigned naddrs;
	enum cfg_mode mode;		/* default relay */
	enum cfg_tls tls;		/* default none */
	int require_tls;		/* default no */
	enum cfg_proxy_proto proxy_protocol;	/* default off */
	char **proxy_trusted;		/* CIDR strings, default "127.0.0.0/8", "::1/128" */
	unsigned nproxy_trusted;
	struct cidr_list proxy_trusted_nets;	/* the same, parsed */
	uint64_t proxy_timeout_ms;	/* deadline for the PROXY header: timeout_command capped at 10s */
	char **relay_domains;		/* lower-cased; required in relay mode */
	unsigned nrelay_domains;
	int relay_any;			/* relay_domains contains '*' */
	unsigned *backends;		/* indexes into config.backends */
	unsigned nbackends;		/* default: every backend */
};

/*
 * BBR's pacing, without the fq qdisc, arms a timer per burst: on the
 * short hop to a backend that cost twice the CPU per 1 MB message here.
 */
#define CFG_CONGESTION_DEFAULT "cubic"

struct cfg_backend {
	char *name;			/* from [backend NAME] */
	int line;
	struct net_addr addr;		/* address = host:port | unix:/path (required) */
	enum cfg_protocol protocol;	/* default smtp */
	unsigned weight;		/* default 1, 1..1000 */
	unsigned max_connections;	/* per worker, default 100 */
	int tls;			/* tls = no | starttls (0/1), default no */
	int tls_verify;			/* default yes */
	char *tls_ca;			/* may be NULL */
	enum cfg_forward forward_client;	/* default none */
	char *congestion;		/* congestion_control: TCP_CONGESTION name,
					 * default "cubic"; "" = the system's */
};

/* [tls] (the default certificate) or [tls HOSTNAME] (chosen by SNI). */
struct cfg_tls_site {
	char *name;			/* NULL for [tls]; lower-case host, may start with "*." */
	int line;			/* section header */
	char *certificate;		/* PEM chain, leaf first (required) */
	char *key;			/* PEM private key (required) */
	int keyline[2];			/* lines of certificate and key, 0 = absent */
};

#define CFG_TLS_V12 1u
#define CFG_TLS_V13 2u
struct cfg_tls_server {
	int enabled;			/* [tls] is present */
	struct cfg_tls_site def;
	unsigned protocols;		/* CFG_TLS_V12 | CFG_TLS_V13 (default both) */
	int session_tickets;		/* default yes */
	struct cfg_tls_site *sites;	/* [tls HOSTNAME] sections */
	unsigned nsites;
};

#define CFG_AUTH_PLAIN 1u
#define CFG_AUTH_LOGIN 2u
struct cfg_auth {
	int enabled;			/* [auth] is present */
	char *users;			/* "name:crypt-hash" file (required) */
	int users_line;
	unsigned mechanisms;		/* CFG_AUTH_PLAIN | CFG_AUTH_LOGIN (default both) */
};

/* [redis]: absent = the embedded in-process store. */
struct cfg_redis {
	int enabled;			/* the section is present */
	struct net_addr addr;		/* address = host:port | unix:/path (default 127.0.0.1:6379) */
	char *password;			/* NULL or "" = no AUTH */
	char *key_prefix;		/* default "mxgate:" */
	uint64_t timeout_ms;		/* default 100ms */
	int on_failure_tempfail;	/* on_failure = allow (0, default) | tempfail (1) */
};

/* A COUNT/DURATION rate; count 0 = that limit is off. */
struct cfg_rate {
	unsigned count;
	uint64_t per_ms;
};

/* [limits]: absent = no limits (enabled 0). Per client IP, IPv6 per ipv6_prefix. */
struct cfg_limits {
	int enabled;
	struct cfg_rate connection_rate;
	unsigned concurrency;		/* 0 = off */
	struct cfg_rate message_rate;
	struct cfg_rate recipient_rate;
	struct cfg_rate auth_failure_rate;
	unsigned ipv6_prefix;		/* default 64, 1..128 */
};

/* [access]: trusted networks skip limits (and DNSBL); denied ones are refused at connect. */
struct cfg_access {
	struct cidr_list allow;
	struct cidr_list deny;
};

struct config {
	char *path;
	/* [server] */
	char *hostname;			/* default: gethostname() */
	unsigned workers;		/* 0 = auto (CPU count) */
	uint64_t max_message_size;	/* bytes, default 50M */
	unsigned max_recipients;	/* default 100 */
	unsigned max_errors;		/* default 10 */
	unsigned max_junk_commands;	/* NOOP, VRFY, RSET, HELP before each counts as an error; 0 (default): no limit */
	uint64_t timeout_command_ms;	/* default 5m */
	uint64_t timeout_data_ms;	/* default 10m */
	uint64_t drain_timeout_ms;	/* default 30s */
	char *log;			/* "stderr" (default) | "syslog" | path */
	int log_json;			/* log_format = text (0) | json (1) */
	int log_level;			/* enum log_level; default info */

	struct cfg_listener *listeners;	/* at least one */
	unsigned nlisteners;
	struct cfg_backend *backends;	/* at least one */
	unsigned nbackends;

	struct cfg_tls_server tls;
	struct cfg_auth auth;
	struct cfg_redis redis;
	struct cfg_limits limits;
	struct cfg_access access;

	/*
	 * What the snapshot needs built from its files (TLS contexts, the
	 * users table): attached by the program, freed with the snapshot.
	 */
	void *assets;
	void (*assets_free)(void *assets);

	int refs;			/* atomic; see config_ref */
};

/*
 * Loads and validates path. Returns 0 and a snapshot with one reference,
 * or -1 with err set to "PATH:LINE: message" (LINE of the offending key
 * or section; 0 when the problem is the file as a whole).
 */
int config_load(const char *path, struct config **out, char *err, size_t errlen);
void config_ref(struct config *c);
void config_unref(struct config *c);

/* Value parsers (pure). Return 0, or -1 for a bad value. */
int config_parse_duration(const char *s, uint64_t *ms);	/* 250ms 30s 5m 1h 2d; bare number = seconds */
int config_parse_size(const char *s, uint64_t *bytes);	/* 512 64k 50M 1G (powers of 1024) */
int config_parse_rate(const char *s, unsigned *count, uint64_t *per_ms);	/* 60/1m */
int config_parse_bool(const char *s, int *v);		/* yes/no/true/false/on/off/1/0 */

#endif
