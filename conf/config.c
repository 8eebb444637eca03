/*
 * config.c - owns the configuration snapshot: reading the INI file with
 * libinih, turning each "key = value" into a typed field through one
 * directive table per section, validating the whole, and the snapshot's
 * lifetime (reference count). Every error names the file and line.
 *
 * libinih does the key/value splitting and inline comments. Around it
 * sits our own line reader, because the Debian build of inih passes no
 * line number to the handler (INI_HANDLER_LINENO is 0), does not report
 * empty sections (INI_CALL_HANDLER_ON_NEW_SECTION is 0), treats indented
 * lines as continuations and cuts lines at 200 bytes. The reader counts
 * lines, sees every section header, strips indentation and handles the
 * rare long line itself, so none of that depends on how inih was built.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <ini.h>

#include "config.h"
#include "core.h"
#include "log.h"
#include "mem.h"
#include "net.h"

/* Enum fields are written through an int pointer by the directive table. */
_Static_assert(sizeof(enum cfg_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_tls) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_proxy_proto) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_protocol) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_forward) == sizeof(int), "enum size");

#define MS_SEC  1000ULL
#define MS_MIN  (60 * MS_SEC)
#define MS_HOUR (60 * MS_MIN)
#define MS_DAY  (24 * MS_HOUR)

/* ------------------------------------------------------------------ */
/* Value parsers                                                       */
/* ------------------------------------------------------------------ */

/* Leading decimal digits into *v; no sign, no spaces, overflow refused. */
static int
parse_digits(const char **sp, uint64_t *v)
{
	const char *s = *sp;
	uint64_t n = 0;

	if (!isdigit((unsigned char)*s))
		return -1;
	for (; isdigit((unsigned char)*s); s++) {
		if (__builtin_mul_overflow(n, 10, &n) ||
		    __builtin_add_overflow(n, (uint64_t)(*s - '0'), &n))
			return -1;
	}
	*sp = s;
	*v = n;
	return 0;
}

int
config_parse_duration(const char *s, uint64_t *ms)
{
	/*
	 * Units are lower case only: nginx reads "M" as months, so "5M"
	 * would be ambiguous; better refused than guessed.
	 */
	static const struct { const char *unit; uint64_t mult; } units[] = {
		{ "", MS_SEC }, { "ms", 1 }, { "s", MS_SEC }, { "m", MS_MIN },
		{ "h", MS_HOUR }, { "d", MS_DAY },
	};
	uint64_t n;

	if (s == NULL || parse_digits(&s, &n) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (strcmp(s, units[i].unit) == 0)
			return __builtin_mul_overflow(n, units[i].mult, ms) ? -1 : 0;
	}
	return -1;
}

int
config_parse_size(const char *s, uint64_t *bytes)
{
	uint64_t n, mult;

	if (s == NULL || parse_digits(&s, &n) < 0)
		return -1;
	switch (*s) {
	case '\0': mult = 1; break;
	case 'k': case 'K': mult = 1ULL << 10; s++; break;
	case 'm': case 'M': mult = 1ULL << 20; s++; break;
	case 'g': case 'G': mult = 1ULL << 30; s++; break;
	default: return -1;
	}
	if (*s != '\0')
		return -1;
	return __builtin_mul_overflow(n, mult, bytes) ? -1 : 0;
}

int
config_parse_rate(const char *s, unsigned *count, uint64_t *per_ms)
{
	uint64_t n, d;

	if (s == NULL || parse_digits(&s, &n) < 0 || *s != '/')
		return -1;
	/* 0/1m would mean "never", which is what an absent limit is for. */
	if (n == 0 || n > UINT32_MAX)
		return -1;
	if (config_parse_duration(s + 1, &d) < 0 || d == 0)
		return -1;
	*count = (unsigned)n;
	*per_ms = d;
	return 0;
}

int
config_parse_bool(const char *s, int *v)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	if (s == NULL)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*v = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*v = 0;
			return 0;
		}
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* Directive tables                                                    */
/* ------------------------------------------------------------------ */

enum dtype {
	D_STR,		/* non-empty string, no control characters */
	D_HOSTNAME,	/* D_STR without spaces: it goes into the banner */
	D_WORD,		/* D_STR without spaces (a Redis key prefix) */
	D_SECRET,	/* string, may be empty, no control characters; never echoed */
	D_UINT,		/* unsigned in [min, max] */
	D_WORKERS,	/* "auto" (0) or [min, max] */
	D_SIZE,		/* uint64_t bytes in [min, max] */
	D_DURATION,	/* uint64_t ms in [min, max] */
	D_RATE,		/* struct cfg_rate, "COUNT/DURATION" */
	D_BOOL,		/* int 0/1 */
	D_ENUM,		/* int, one of names[] */
	D_ADDR,		/* one struct net_addr */
	D_ADDRS,	/* struct net_addr * + unsigned count at off2 */
	D_CIDRS,	/* char ** + unsigned count at off2, "addr/prefix" */
	D_NETS,		/* struct cidr_list (cidr_list_parse) */
	D_DOMAINS,	/* char ** + unsigned count at off2, lower-cased; '*' */
	D_NAMES,	/* backend names, resolved after the whole file is read */
	D_PROTOCOLS,	/* unsigned CFG_TLS_V12 | CFG_TLS_V13 from "TLSv1.2, TLSv1.3" */
	D_MECHS,	/* unsigned CFG_AUTH_PLAIN | CFG_AUTH_LOGIN from "PLAIN, LOGIN" */
};

struct enum_name {
	const char *name;
	int value;
};

struct directive {
	const char *name;
	enum dtype type;
	size_t off;		/* into struct config / cfg_listener / cfg_backend */
	size_t off2;		/* count field of the list types */
	uint64_t min, max;
	const struct enum_name *names;	/* D_ENUM, NULL-terminated */
};

static const struct enum_name log_formats[] = {
	{ "text", 0 }, { "json", 1 }, { NULL, 0 },
};
/* Compared here rather than with log_level_parse(): also case-insensitive. */
static const struct enum_name log_levels[] = {
	{ "error", LOG_LVL_ERROR }, { "warn", LOG_LVL_WARN },
	{ "info", LOG_LVL_INFO }, { "debug", LOG_LVL_DEBUG }, { NULL, 0 },
};
static const struct enum_name modes[] = {
	{ "relay", CFG_MODE_RELAY }, { "submission", CFG_MODE_SUBMISSION },
	{ NULL, 0 },
};
static const struct enum_name listener_tls[] = {
	{ "none", CFG_TLS_NONE }, { "starttls", CFG_TLS_STARTTLS },
	{ "implicit", CFG_TLS_IMPLICIT }, { NULL, 0 },
};
static const struct enum_name proxy_protos[] = {
	{ "off", CFG_PROXY_OFF }, { "v1", CFG_PROXY_V1 }, { "v2", CFG_PROXY_V2 },
	{ "auto", CFG_PROXY_AUTO }, { NULL, 0 },
};
static const struct enum_name protocols[] = {
	{ "smtp", CFG_PROTO_SMTP }, { "lmtp", CFG_PROTO_LMTP }, { NULL, 0 },
};
/* "none" is accepted too so that the word matches the listener's tls key. */
static const struct enum_name backend_tls[] = {
	{ "no", 0 }, { "starttls", 1 }, { "none", 0 }, { NULL, 0 },
};
static const struct enum_name forwards[] = {
	{ "none", CFG_FORWARD_NONE }, { "xclient", CFG_FORWARD_XCLIENT },
	{ "xforward", CFG_FORWARD_XFORWARD }, { NULL, 0 },
};
static const struct enum_name on_failures[] = {
	{ "allow", 0 }, { "tempfail", 1 }, { NULL, 0 },
};

/* What every list of networks says when an entry is not one. */
#define NETS_EXPECTED "an address or network such as 192.0.2.0/24 or 2001:db8::/32"

#define SRV(f) offsetof(struct config, f), 0	/* also [redis], [limits], [access] */
#define LST(f) offsetof(struct cfg_listener, f), 0
#define LSTN(f, n) offsetof(struct cfg_listener, f), offsetof(struct cfg_listener, n)
#define BE(f) offsetof(struct cfg_backend, f), 0

static const struct directive server_keys[] = {
	{ "hostname",         D_HOSTNAME, SRV(hostname), 0, 0, NULL },
	{ "workers",          D_WORKERS,  SRV(workers), 1, 256, NULL },
	{ "max_message_size", D_SIZE,     SRV(max_message_size), 1, UINT64_MAX, NULL },
	{ "max_recipients",   D_UINT,     SRV(max_recipients), 1, 100000, NULL },
	{ "max_errors",       D_UINT,     SRV(max_errors), 1, 100000, NULL },
	{ "max_junk_commands", D_UINT,    SRV(max_junk_commands), 0, 1000000, NULL },
	{ "timeout_command",  D_DURATION, SRV(timeout_command_ms), 1, MS_DAY, NULL },
	{ "timeout_data",     D_DURATION, SRV(timeout_data_ms), 1, MS_DAY, NULL },
	/* 0 is allowed: stop at once, closing whatever is still open. */
	{ "drain_timeout",    D_DURATION, SRV(drain_timeout_ms), 0, MS_DAY, NULL },
	{ "log",              D_STR,      SRV(log), 0, 0, NULL },
	{ "log_format",       D_ENUM,     SRV(log_json), 0, 0, log_formats },
	{ "log_level",        D_ENUM,     SRV(log_level), 0, 0, log_levels },
};

enum {
	LK_LISTEN, LK_MODE, LK_TLS, LK_REQUIRE_TLS, LK_PROXY_PROTOCOL,
	LK_PROXY_TRUSTED, LK_RELAY_DOMAINS, LK_BACKENDS, LK_COUNT
};
static const struct directive listener_keys[LK_COUNT] = {
	[LK_LISTEN]         = { "listen", D_ADDRS, LSTN(addrs, naddrs), 0, 0, NULL },
	[LK_MODE]           = { "mode", D_ENUM, LST(mode), 0, 0, modes },
	[LK_TLS]            = { "tls", D_ENUM, LST(tls), 0, 0, listener_tls },
	[LK_REQUIRE_TLS]    = { "require_tls", D_BOOL, LST(require_tls), 0, 0, NULL },
	[LK_PROXY_PROTOCOL] = { "proxy_protocol", D_ENUM, LST(proxy_protocol), 0, 0, proxy_protos },
	[LK_PROXY_TRUSTED]  = { "proxy_trusted", D_CIDRS, LSTN(proxy_trusted, nproxy_trusted), 0, 0, NULL },
	[LK_RELAY_DOMAINS]  = { "relay_domains", D_DOMAINS, LSTN(relay_domains, nrelay_domains), 0, 0, NULL },
	[LK_BACKENDS]       = { "backends", D_NAMES, 0, 0, 0, 0, NULL },
};

enum {
	BK_ADDRESS, BK_PROTOCOL, BK_WEIGHT, BK_MAX_CONNECTIONS, BK_TLS,
	BK_TLS_VERIFY, BK_TLS_CA, BK_FORWARD_CLIENT, BK_CONGESTION, BK_COUNT
};
static const struct directive backend_keys[BK_COUNT] = {
	[BK_ADDRESS]         = { "address", D_ADDR, BE(addr), 0, 0, NULL },
	[BK_PROTOCOL]        = { "protocol", D_ENUM, BE(protocol), 0, 0, protocols },
	[BK_WEIGHT]          = { "weight", D_UINT, BE(weight), 1, 1000, NULL },
	[BK_MAX_CONNECTIONS] = { "max_connections", D_UINT, BE(max_connections), 1, 100000, NULL },
	[BK_TLS]             = { "tls", D_ENUM, BE(tls), 0, 0, backend_tls },
	[BK_TLS_VERIFY]      = { "tls_verify", D_BOOL, BE(tls_verify), 0, 0, NULL },
	[BK_TLS_CA]          = { "tls_ca", D_STR, BE(tls_ca), 0, 0, NULL },
	[BK_FORWARD_CLIENT]  = { "forward_client", D_ENUM, BE(forward_client), 0, 0, forwards },
	[BK_CONGESTION]      = { "congestion_control", D_WORD, BE(congestion), 0, 0, NULL },
};

static const struct directive redis_keys[] = {
	{ "address",    D_ADDR,     SRV(redis.addr), 0, 0, NULL },
	{ "password",   D_SECRET,   SRV(redis.password), 0, 0, NULL },
	{ "key_prefix", D_WORD,     SRV(redis.key_prefix), 0, 0, NULL },
	{ "timeout",    D_DURATION, SRV(redis.timeout_ms), 1, MS_MIN, NULL },
	{ "on_failure", D_ENUM,     SRV(redis.on_failure_tempfail), 0, 0, on_failures },
};

/* A key that is absent leaves its limit off (count 0). */
static const struct directive limits_keys[] = {
	{ "connection_rate",   D_RATE, SRV(limits.connection_rate), 0, 0, NULL },
	{ "concurrency",       D_UINT, SRV(limits.concurrency), 1, 100000, NULL },
	{ "message_rate",      D_RATE, SRV(limits.message_rate), 0, 0, NULL },
	{ "recipient_rate",    D_RATE, SRV(limits.recipient_rate), 0, 0, NULL },
	{ "auth_failure_rate", D_RATE, SRV(limits.auth_failure_rate), 0, 0, NULL },
	{ "ipv6_prefix",       D_UINT, SRV(limits.ipv6_prefix), 1, 128, NULL },
};

static const struct directive tls_keys[] = {
	{ "certificate",     D_STR,       SRV(tls.def.certificate), 0, 0, NULL },
	{ "key",             D_STR,       SRV(tls.def.key), 0, 0, NULL },
	{ "protocols",       D_PROTOCOLS, SRV(tls.protocols), 0, 0, NULL },
	{ "session_tickets", D_BOOL,      SRV(tls.session_tickets), 0, 0, NULL },
};

#define SITE(f) offsetof(struct cfg_tls_site, f), 0
static const struct directive tls_site_keys[2] = {
	{ "certificate", D_STR, SITE(certificate), 0, 0, NULL },
	{ "key",         D_STR, SITE(key), 0, 0, NULL },
};

static const struct directive auth_keys[] = {
	{ "users",      D_STR,   SRV(auth.users), 0, 0, NULL },
	{ "mechanisms", D_MECHS, SRV(auth.mechanisms), 0, 0, NULL },
};

static const struct directive access_keys[] = {
	{ "allow", D_NETS, SRV(access.allow), 0, 0, NULL },
	{ "deny",  D_NETS, SRV(access.deny), 0, 0, NULL },
};

/*
 * Sections without a name, each allowed once, whose keys all land in
 * struct config. Indexed by enum section (SEC_SERVER .. SEC_NSINGLE - 1).
 */
enum section { SEC_NONE, SEC_SERVER, SEC_REDIS, SEC_LIMITS, SEC_ACCESS, SEC_TLS, SEC_AUTH,
	       SEC_NSINGLE, SEC_LISTENER = SEC_NSINGLE, SEC_BACKEND, SEC_TLS_SITE };

struct single_section {
	const char *name;
	const struct directive *keys;
	size_t nkeys;
};

static const struct single_section singles[SEC_NSINGLE] = {
	[SEC_SERVER] = { "server", server_keys, ARRAY_SIZE(server_keys) },
	[SEC_REDIS]  = { "redis", redis_keys, ARRAY_SIZE(redis_keys) },
	[SEC_LIMITS] = { "limits", limits_keys, ARRAY_SIZE(limits_keys) },
	[SEC_ACCESS] = { "access", access_keys, ARRAY_SIZE(access_keys) },
	[SEC_TLS]    = { "tls", tls_keys, ARRAY_SIZE(tls_keys) },
	[SEC_AUTH]   = { "auth", auth_keys, ARRAY_SIZE(auth_keys) },
};

#define SINGLE_MAX_KEYS 16
_Static_assert(ARRAY_SIZE(server_keys) <= SINGLE_MAX_KEYS, "keyline size");
_Static_assert(ARRAY_SIZE(redis_keys) <= SINGLE_MAX_KEYS, "keyline size");
_Static_assert(ARRAY_SIZE(limits_keys) <= SINGLE_MAX_KEYS, "keyline size");
_Static_assert(ARRAY_SIZE(access_keys) <= SINGLE_MAX_KEYS, "keyline size");
_Static_assert(ARRAY_SIZE(tls_keys) <= SINGLE_MAX_KEYS, "keyline size");
_Static_assert(ARRAY_SIZE(auth_keys) <= SINGLE_MAX_KEYS, "keyline size");

/* Sections of the contract that later versions will implement. */
static const char *const later_sections[] = {
	"route", "dnsbl", "metrics",
};

/* ------------------------------------------------------------------ */
/* Parse state                                                         */
/* ------------------------------------------------------------------ */

/* What the parser needs to remember about a section besides its fields. */
struct listener_extra {
	int keyline[LK_COUNT];		/* 0 = key absent */
	char **backend_names;
	unsigned nbackend_names;
};

struct backend_extra {
	int keyline[BK_COUNT];
};

struct parser {
	const char *path;
	FILE *f;
	char *buf;			/* getline buffer */
	size_t bufcap;
	int lineno;			/* of the line last handed to inih */
	struct config *c;

	enum section sec;
	int single_line[SEC_NSINGLE];	/* header line of each single section, 0 = absent */
	int single_keyline[SEC_NSINGLE][SINGLE_MAX_KEYS];
	struct listener_extra *lx;	/* parallel to c->listeners */
	struct backend_extra *bx;	/* parallel to c->backends */

	char *err;
	size_t errlen;
	int err_line;			/* -1 = no error yet */
};

static void set_err(struct parser *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Keeps the first error only: later ones are often its consequences. */
static void
set_err(struct parser *p, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (p->err_line >= 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "%s:%d: %s", p->path, line, msg);
	p->err_line = line;
}

static void
free_strv(char **v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Shorthand for the common "bad value" message. */
static int
bad_value(struct parser *p, const char *key, const char *value, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
bad_value(struct parser *p, const char *key, const char *value, const char *fmt, ...)
{
	char expected[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(expected, sizeof(expected), fmt, ap);
	va_end(ap);
	set_err(p, p->lineno, "bad value for %s: '%s' (expected %s)", key, value, expected);
	return -1;
}

static void
enum_expected(const struct enum_name *names, char *buf, size_t len)
{
	size_t n = 0, used = 0;

	while (names[n].name != NULL)
		n++;
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		/* Aliases that share a value with an earlier word are not listed. */
		int alias = 0;
		for (size_t j = 0; j < i; j++)
			alias |= names[j].value == names[i].value;
		if (alias)
			continue;
		used += snprintf(buf + used, used < len ? len - used : 0, "%s%s",
				 used == 0 ? "" : ", ", names[i].name);
	}
	/* Turn the last ", " into " or ". */
	char *last = strrchr(buf, ',');
	if (last != NULL && strlen(buf) + 2 < len) {
		memmove(last + 3, last + 1, strlen(last + 1) + 1);
		memcpy(last, " or", 3);
	}
}

static const char *
enum_name_of(const struct enum_name *names, int value)
{
	for (; names->name != NULL; names++)
		if (names->value == value)
			return names->name;
	return "?";
}

/*
 * Splits a comma-separated list into trimmed elements. Returns the
 * count, or -1 when an element is empty ("a,,b", "a," or "").
 */
static int
split_list(const char *value, char ***out)
{
	char **v = NULL;
	int n = 0;
	const char *s = value;

	for (;;) {
		const char *end = strchr(s, ',');
		const char *e = end != NULL ? end : s + strlen(s);
		while (s < e && isspace((unsigned char)*s))
			s++;
		while (e > s && isspace((unsigned char)e[-1]))
			e--;
		if (e == s) {
			free_strv(v, (unsigned)n);
			return -1;
		}
		v = xrealloc(v, sizeof(*v) * (size_t)(n + 1));
		v[n++] = xstrndup(s, (size_t)(e - s));
		if (end == NULL)
			break;
		s = end + 1;
	}
	*out = v;
	return n;
}

static int
has_ctl_or_space(const char *s, int allow_space)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch == 0x7f || (!allow_space && ch == ' '))
			return 1;
	}
	return 0;
}

/* "10.0.0.0/8", "::1/128" or a bare address (stored with its full prefix). */
static char *
parse_cidr(const char *s)
{
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char bin[16];
	const char *slash = strchr(s, '/');
	size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
	unsigned maxbits;
	uint64_t bits;

	if (alen == 0 || alen >= sizeof(addr))
		return NULL;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, bin) == 1)
		maxbits = 32;
	else if (inet_pton(AF_INET6, addr, bin) == 1)
		maxbits = 128;
	else
		return NULL;
	if (slash == NULL) {
		bits = maxbits;
	} else {
		const char *b = slash + 1;
		if (parse_digits(&b, &bits) < 0 || *b != '\0' || bits > maxbits)
			return NULL;
	}
	char out[INET6_ADDRSTRLEN + 8];
	snprintf(out, sizeof(out), "%s/%u", addr, (unsigned)bits);
	return xstrdup(out);
}

/* Letters, digits, '-', '_' and dots between labels; or '*' alone. */
static int
domain_ok(const char *d)
{
	size_t len = strlen(d);

	if (strcmp(d, "*") == 0)
		return 1;
	if (len == 0 || len > 253 || d[0] == '.' || d[len - 1] == '.' || strstr(d, "..") != NULL)
		return 0;
	for (; *d; d++)
		if (!isalnum((unsigned char)*d) && *d != '-' && *d != '.' && *d != '_')
			return 0;
	return 1;
}

/* Listener and backend names: they appear in lists and in logs. */
static int
name_ok(const char *n)
{
	if (*n == '\0' || strlen(n) > 64)
		return 0;
	for (; *n; n++)
		if (!isalnum((unsigned char)*n) && *n != '-' && *n != '_' && *n != '.')
			return 0;
	return 1;
}

/* A bound of a duration range for messages: "0", "1ms", "1m", "1d". */
static const char *
format_duration(uint64_t ms, char *buf, size_t len)
{
	static const struct { const char *unit; uint64_t mult; } units[] = {
		{ "d", MS_DAY }, { "h", MS_HOUR }, { "m", MS_MIN }, { "s", MS_SEC },
	};

	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (ms != 0 && ms % units[i].mult == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)(ms / units[i].mult), units[i].unit);
			return buf;
		}
	}
	snprintf(buf, len, ms == 0 ? "0" : "%llums", (unsigned long long)ms);
	return buf;
}

/* ------------------------------------------------------------------ */
/* Applying one directive                                              */
/* ------------------------------------------------------------------ */

static int
apply(struct parser *p, const struct directive *d, void *obj, const char *value)
{
	char *field = (char *)obj + d->off;
	char expected[128];
	uint64_t u;
	int b;

	switch (d->type) {
	case D_STR:
	case D_HOSTNAME:
	case D_WORD:
		if (*value == '\0' || has_ctl_or_space(value, d->type == D_STR) ||
		    (d->type != D_STR && strlen(value) > 255))
			return bad_value(p, d->name, value, "%s",
					 d->type == D_HOSTNAME ? "a host name without spaces" :
					 d->type == D_WORD ? "a non-empty string without spaces, at most 255 bytes"
							   : "a non-empty string");
		free(*(char **)field);	/* replaces a default such as log = stderr */
		*(char **)field = xstrdup(value);
		return 0;

	case D_SECRET:
		/* A password: not repeated in the message, which may end up in a log. */
		if (has_ctl_or_space(value, 1)) {
			set_err(p, p->lineno, "bad value for %s (expected a string without control "
				"characters; the value is not shown)", d->name);
			return -1;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 0;

	case D_WORKERS:
		if (strcasecmp(value, "auto") == 0) {
			*(unsigned *)field = 0;
			return 0;
		}
		/* fall through */
	case D_UINT: {
		const char *s = value;
		if (parse_digits(&s, &u) < 0 || *s != '\0' || u < d->min || u > d->max)
			return bad_value(p, d->name, value, "%sa number from %llu to %llu",
					 d->type == D_WORKERS ? "auto or " : "",
					 (unsigned long long)d->min, (unsigned long long)d->max);
		*(unsigned *)field = (unsigned)u;
		return 0;
	}

	case D_SIZE:
		if (config_parse_size(value, &u) < 0)
			return bad_value(p, d->name, value, "a size like 512, 64k, 50M or 1G");
		if (u < d->min || u > d->max)
			return bad_value(p, d->name, value, "a size of at least %llu bytes",
					 (unsigned long long)d->min);
		*(uint64_t *)field = u;
		return 0;

	case D_DURATION: {
		char lo[32], hi[32];
		if (config_parse_duration(value, &u) < 0)
			return bad_value(p, d->name, value, "a duration like 250ms, 30s, 5m, 1h or 2d");
		if (u < d->min || u > d->max)
			return bad_value(p, d->name, value, "a duration from %s to %s",
					 format_duration(d->min, lo, sizeof(lo)),
					 format_duration(d->max, hi, sizeof(hi)));
		*(uint64_t *)field = u;
		return 0;
	}

	case D_RATE: {
		struct cfg_rate *r = (struct cfg_rate *)field;
		if (config_parse_rate(value, &r->count, &r->per_ms) < 0)
			return bad_value(p, d->name, value, "COUNT/DURATION with a COUNT of at least 1, "
					 "like 60/1m or 5/10m");
		return 0;
	}

	case D_BOOL:
		if (config_parse_bool(value, &b) < 0)
			return bad_value(p, d->name, value, "yes or no");
		*(int *)field = b;
		return 0;

	case D_ENUM:
		for (const struct enum_name *e = d->names; e->name != NULL; e++) {
			if (strcasecmp(value, e->name) == 0) {
				*(int *)field = e->value;
				return 0;
			}
		}
		enum_expected(d->names, expected, sizeof(expected));
		return bad_value(p, d->name, value, "%s", expected);

	case D_ADDR: {
		char nerr[160];
		if (net_addr_parse(value, (struct net_addr *)field, nerr, sizeof(nerr)) < 0)
			return bad_value(p, d->name, value,
					 "host:port, [ipv6]:port or unix:/path: %s", nerr);
		return 0;
	}

	case D_ADDRS: {
		char **items, nerr[160];
		int n = split_list(value, &items);
		if (n < 0)
			return bad_value(p, d->name, value, "a comma-separated list without empty elements");
		struct net_addr *addrs = xcalloc((size_t)n, sizeof(*addrs));
		for (int i = 0; i < n; i++) {
			if (net_addr_parse(items[i], &addrs[i], nerr, sizeof(nerr)) < 0) {
				bad_value(p, d->name, items[i],
					  "host:port, [ipv6]:port or unix:/path: %s", nerr);
				free(addrs);
				free_strv(items, (unsigned)n);
				return -1;
			}
		}
		free_strv(items, (unsigned)n);
		*(struct net_addr **)field = addrs;
		*(unsigned *)((char *)obj + d->off2) = (unsigned)n;
		return 0;
	}

	case D_CIDRS:
	case D_DOMAINS: {
		char **items;
		int n = split_list(value, &items);
		if (n < 0)
			return bad_value(p, d->name, value, "a comma-separated list without empty elements");
		for (int i = 0; i < n; i++) {
			if (d->type == D_CIDRS) {
				char *cidr = parse_cidr(items[i]);
				if (cidr == NULL) {
					bad_value(p, d->name, items[i], NETS_EXPECTED);
					free_strv(items, (unsigned)n);
					return -1;
				}
				free(items[i]);
				items[i] = cidr;
			} else {
				if (!domain_ok(items[i])) {
					bad_value(p, d->name, items[i], "a domain like example.test, or '*' for any");
					free_strv(items, (unsigned)n);
					return -1;
				}
				/* Compared with recipient domains case-insensitively. */
				for (char *c = items[i]; *c; c++)
					*c = (char)tolower((unsigned char)*c);
			}
		}
		/* Replaces a default list such as proxy_trusted's. */
		free_strv(*(char ***)field, *(unsigned *)((char *)obj + d->off2));
		*(char ***)field = items;
		*(unsigned *)((char *)obj + d->off2) = (unsigned)n;
		return 0;
	}

	case D_NETS: {
		struct cidr_list nets = { NULL, 0 };
		unsigned bad = 0;
		char **items;
		int n = split_list(value, &items);
		if (n < 0)
			return bad_value(p, d->name, value, "a comma-separated list without empty elements");
		if (cidr_list_parse(&nets, items, (unsigned)n, &bad) < 0) {
			bad_value(p, d->name, bad < (unsigned)n ? items[bad] : value, NETS_EXPECTED);
			cidr_list_free(&nets);
			free_strv(items, (unsigned)n);
			return -1;
		}
		free_strv(items, (unsigned)n);
		cidr_list_free((struct cidr_list *)field);
		*(struct cidr_list *)field = nets;
		return 0;
	}

	case D_PROTOCOLS:
	case D_MECHS: {
		static const struct enum_name tls_protos[] = {
			{ "TLSv1.2", CFG_TLS_V12 }, { "TLSv1.3", CFG_TLS_V13 }, { NULL, 0 },
		};
		static const struct enum_name mechs[] = {
			{ "PLAIN", CFG_AUTH_PLAIN }, { "LOGIN", CFG_AUTH_LOGIN }, { NULL, 0 },
		};
		const struct enum_name *names = d->type == D_PROTOCOLS ? tls_protos : mechs;
		unsigned bits = 0;
		char **items;
		int n = split_list(value, &items);
		if (n < 0)
			return bad_value(p, d->name, value, "a comma-separated list without empty elements");
		for (int i = 0; i < n; i++) {
			const struct enum_name *e;
			for (e = names; e->name != NULL; e++)
				if (strcasecmp(items[i], e->name) == 0)
					break;
			if (e->name == NULL) {
				bad_value(p, d->name, items[i], "%s", d->type == D_PROTOCOLS ?
					  "TLSv1.2 and/or TLSv1.3" : "PLAIN and/or LOGIN");
				free_strv(items, (unsigned)n);
				return -1;
			}
			bits |= (unsigned)e->value;
		}
		free_strv(items, (unsigned)n);
		*(unsigned *)field = bits;
		return 0;
	}

	case D_NAMES: {
		/* Only listeners have one; the names are checked once all backends are known. */
		struct listener_extra *lx = &p->lx[p->c->nlisteners - 1];
		char **items;
		int n = split_list(value, &items);
		if (n < 0)
			return bad_value(p, d->name, value, "a comma-separated list without empty elements");
		lx->backend_names = items;
		lx->nbackend_names = (unsigned)n;
		return 0;
	}
	}
	return -1;
}

/* ------------------------------------------------------------------ */
/* Sections                                                            */
/* ------------------------------------------------------------------ */

static void
listener_defaults(struct cfg_listener *l)
{
	l->mode = CFG_MODE_RELAY;
	l->tls = CFG_TLS_NONE;
	l->proxy_protocol = CFG_PROXY_OFF;
	l->proxy_trusted = xcalloc(2, sizeof(char *));
	l->proxy_trusted[0] = xstrdup("127.0.0.0/8");
	l->proxy_trusted[1] = xstrdup("::1/128");
	l->nproxy_trusted = 2;
}

static void
backend_defaults(struct cfg_backend *b)
{
	b->protocol = CFG_PROTO_SMTP;
	b->weight = 1;
	b->max_connections = 100;
	b->tls = 0;
	b->tls_verify = 1;
	b->forward_client = CFG_FORWARD_NONE;
	b->congestion = xstrdup(CFG_CONGESTION_DEFAULT);
}

/* [tls HOSTNAME]: a certificate chosen by SNI. */
static void
begin_tls_site(struct parser *p, const char *name)
{
	struct config *c = p->c;
	const char *h = name;
	char host[256];
	size_t n = 0;

	if (h[0] == '*' && h[1] == '.')
		h += 2;
	for (const char *q = h; *q; q++) {
		if (!isalnum((unsigned char)*q) && *q != '-' && *q != '.')
			break;
		n++;
	}
	if (*h == '\0' || h[n] != '\0' || strlen(name) >= sizeof(host)) {
		set_err(p, p->lineno, "bad host name in [tls %s] (expected a name such as "
			"mx.example.test or *.example.test)", name);
		return;
	}
	snprintf(host, sizeof(host), "%s", name);
	for (char *q = host; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	for (unsigned i = 0; i < c->tls.nsites; i++) {
		if (strcmp(c->tls.sites[i].name, host) == 0) {
			set_err(p, p->lineno, "duplicate section [tls %s] (first at line %d)",
				host, c->tls.sites[i].line);
			return;
		}
	}
	c->tls.sites = xrealloc(c->tls.sites, sizeof(*c->tls.sites) * (c->tls.nsites + 1));
	struct cfg_tls_site *site = &c->tls.sites[c->tls.nsites++];
	memset(site, 0, sizeof(*site));
	site->name = xstrdup(host);
	site->line = p->lineno;
	p->sec = SEC_TLS_SITE;
}

/*
 * A section header: "[server]", "[redis]", "[limits]", "[access]",
 * "[listener NAME]", "[backend NAME]". text is what is between the brackets.
 */
static void
begin_section(struct parser *p, const char *text)
{
	char kind[64];
	const char *s = text, *name;
	size_t klen;
	struct config *c = p->c;

	while (isspace((unsigned char)*s))
		s++;
	klen = strcspn(s, " \t");
	name = s + klen;
	while (isspace((unsigned char)*name))
		name++;
	snprintf(kind, sizeof(kind), "%.*s", (int)klen, s);

	p->sec = SEC_NONE;
	if (strcmp(kind, "tls") == 0 && *name != '\0') {
		begin_tls_site(p, name);
		return;
	}
	for (int i = SEC_SERVER; i < SEC_NSINGLE; i++) {
		if (strcmp(kind, singles[i].name) != 0)
			continue;
		if (*name != '\0') {
			set_err(p, p->lineno, "section [%s] takes no name", kind);
			return;
		}
		if (p->single_line[i] > 0) {
			set_err(p, p->lineno, "duplicate section [%s] (first at line %d)",
				kind, p->single_line[i]);
			return;
		}
		p->single_line[i] = p->lineno;
		p->sec = (enum section)i;
		/* Present, even empty, turns the feature on (with its defaults). */
		if (i == SEC_REDIS)
			c->redis.enabled = 1;
		else if (i == SEC_LIMITS)
			c->limits.enabled = 1;
		else if (i == SEC_TLS)
			c->tls.enabled = 1, c->tls.def.line = p->lineno;
		else if (i == SEC_AUTH)
			c->auth.enabled = 1;
		return;
	}
	if (strcmp(kind, "listener") == 0 || strcmp(kind, "backend") == 0) {
		int is_listener = kind[0] == 'l';
		if (*name == '\0') {
			set_err(p, p->lineno, "section [%s] needs a name: [%s NAME]", kind, kind);
			return;
		}
		if (!name_ok(name)) {
			set_err(p, p->lineno, "bad %s name '%s' (expected letters, digits, '-', '_' or '.')",
				kind, name);
			return;
		}
		if (is_listener) {
			for (unsigned i = 0; i < c->nlisteners; i++) {
				if (strcmp(c->listeners[i].name, name) == 0) {
					set_err(p, p->lineno, "duplicate section [listener %s] (first at line %d)",
						name, c->listeners[i].line);
					return;
				}
			}
			c->listeners = xrealloc(c->listeners, sizeof(*c->listeners) * (c->nlisteners + 1));
			p->lx = xrealloc(p->lx, sizeof(*p->lx) * (c->nlisteners + 1));
			struct cfg_listener *l = &c->listeners[c->nlisteners];
			memset(l, 0, sizeof(*l));
			memset(&p->lx[c->nlisteners], 0, sizeof(*p->lx));
			c->nlisteners++;
			l->name = xstrdup(name);
			l->line = p->lineno;
			listener_defaults(l);
			p->sec = SEC_LISTENER;
		} else {
			for (unsigned i = 0; i < c->nbackends; i++) {
				if (strcmp(c->backends[i].name, name) == 0) {
					set_err(p, p->lineno, "duplicate section [backend %s] (first at line %d)",
						name, c->backends[i].line);
					return;
				}
			}
			c->backends = xrealloc(c->backends, sizeof(*c->backends) * (c->nbackends + 1));
			p->bx = xrealloc(p->bx, sizeof(*p->bx) * (c->nbackends + 1));
			struct cfg_backend *b = &c->backends[c->nbackends];
			memset(b, 0, sizeof(*b));
			memset(&p->bx[c->nbackends], 0, sizeof(*p->bx));
			c->nbackends++;
			b->name = xstrdup(name);
			b->line = p->lineno;
			backend_defaults(b);
			p->sec = SEC_BACKEND;
		}
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(later_sections); i++) {
		if (strcmp(kind, later_sections[i]) == 0) {
			set_err(p, p->lineno, "section [%s] is not supported by this version", kind);
			return;
		}
	}
	set_err(p, p->lineno, "unknown section [%s]", text);
}

/* One "key = value" of the current section. */
static int
handle_kv(struct parser *p, const char *key, const char *value)
{
	const struct directive *table;
	size_t n;
	int *keyline;
	void *obj;
	const char *secname;
	char secbuf[96];

	switch (p->sec) {
	case SEC_SERVER:
	case SEC_REDIS:
	case SEC_LIMITS:
	case SEC_ACCESS:
	case SEC_TLS:
	case SEC_AUTH:
		table = singles[p->sec].keys, n = singles[p->sec].nkeys;
		keyline = p->single_keyline[p->sec];
		obj = p->c;
		secname = singles[p->sec].name;
		break;
	case SEC_LISTENER:
		table = listener_keys, n = LK_COUNT;
		keyline = p->lx[p->c->nlisteners - 1].keyline;
		obj = &p->c->listeners[p->c->nlisteners - 1];
		snprintf(secbuf, sizeof(secbuf), "listener %s", p->c->listeners[p->c->nlisteners - 1].name);
		secname = secbuf;
		break;
	case SEC_BACKEND:
		table = backend_keys, n = BK_COUNT;
		keyline = p->bx[p->c->nbackends - 1].keyline;
		obj = &p->c->backends[p->c->nbackends - 1];
		snprintf(secbuf, sizeof(secbuf), "backend %s", p->c->backends[p->c->nbackends - 1].name);
		secname = secbuf;
		break;
	case SEC_TLS_SITE: {
		struct cfg_tls_site *site = &p->c->tls.sites[p->c->tls.nsites - 1];
		table = tls_site_keys, n = ARRAY_SIZE(tls_site_keys);
		keyline = site->keyline;
		obj = site;
		snprintf(secbuf, sizeof(secbuf), "tls %s", site->name);
		secname = secbuf;
		break;
	}
	default:
		set_err(p, p->lineno, "key '%s' is outside of any section", key);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(table[i].name, key) != 0)
			continue;
		if (keyline[i] != 0) {
			set_err(p, p->lineno, "duplicate key '%s' in [%s] (first at line %d)",
				key, secname, keyline[i]);
			return -1;
		}
		keyline[i] = p->lineno;
		return apply(p, &table[i], obj, value);
	}
	set_err(p, p->lineno, "unknown key '%s' in [%s]", key, secname);
	return -1;
}

/* inih's callback; the section is tracked by the reader, see below. */
static int
ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct parser *p = user;

	(void)section;
	if (p->err_line >= 0)
		return 0;
	if (value == NULL)	/* only with INI_ALLOW_NO_VALUE builds */
		value = "";
	return handle_kv(p, name, value) == 0;
}

/*
 * A line too long for inih's buffer: split "key = value ; comment"
 * here the way inih would, rather than refusing long lists.
 */
static void
long_line(struct parser *p, char *s)
{
	char *eq = strpbrk(s, "=:"), *v, *e;

	if (eq == NULL) {
		set_err(p, p->lineno, "syntax error (expected 'key = value' or '[section]')");
		return;
	}
	for (e = eq; e > s && isspace((unsigned char)e[-1]); e--)
		;
	*e = '\0';
	for (v = eq + 1; isspace((unsigned char)*v); v++)
		;
	for (e = v; *e; e++) {
		if (*e == ';' && e > v && isspace((unsigned char)e[-1])) {
			*e = '\0';
			break;
		}
	}
	for (e = v + strlen(v); e > v && isspace((unsigned char)e[-1]); e--)
		;
	*e = '\0';
	handle_kv(p, s, v);
}

/*
 * fgets-style reader for ini_parse_stream: hands inih exactly one line
 * per call, so its line count equals ours, and looks at each line first.
 */
static char *
reader(char *str, int num, void *stream)
{
	struct parser *p = stream;
	ssize_t len;
	char *s, *e;

	/* Stop at the first error: the rest would only add noise. */
	if (p->err_line >= 0 || num < 2)
		return NULL;
	len = getline(&p->buf, &p->bufcap, p->f);
	if (len < 0)
		return NULL;
	p->lineno++;
	s = p->buf;
	if ((size_t)len != strlen(s)) {
		set_err(p, p->lineno, "line contains a NUL byte");
		return NULL;
	}
	if (p->lineno == 1 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		s += 3;
	/*
	 * Indentation is dropped: inih would take an indented line for the
	 * continuation of the previous value, which no key here wants.
	 */
	while (isspace((unsigned char)*s))
		s++;
	for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
		;
	*e = '\0';
	/* '#' starts a comment after a space too, as the contract promises. */
	for (e = s; *e; e++) {
		if (*e == '#' && (e == s || isspace((unsigned char)e[-1]))) {
			*e = '\0';
			break;
		}
	}
	if (*s == '[') {
		char *close = strchr(s, ']');
		if (close == NULL) {
			set_err(p, p->lineno, "syntax error: section header without ']'");
			return NULL;
		}
		for (e = close + 1; isspace((unsigned char)*e); e++)
			;
		if (*e != '\0' && *e != ';') {
			set_err(p, p->lineno, "syntax error: text after the section header");
			return NULL;
		}
		*close = '\0';
		begin_section(p, s + 1);
		*s = '\0';	/* inih need not see it: we track the section */
	} else if (*s == ';') {
		*s = '\0';
	} else if (strlen(s) + 2 > (size_t)num) {
		long_line(p, s);
		*s = '\0';
	}
	snprintf(str, (size_t)num, "%s\n", s);
	return str;
}

/* ------------------------------------------------------------------ */
/* Validation                                                          */
/* ------------------------------------------------------------------ */

static void
refuse(struct parser *p, int line, const char *key, const char *value)
{
	set_err(p, line, "%s = %s is not supported by this version", key, value);
}

/*
 * congestion_control: "system" leaves the system's; a name is tried on a
 * throwaway socket, as the kernel alone knows what it may load. The
 * default is not tried: where it is missing the links warn and go on.
 */
static void
validate_congestion(struct parser *p, struct cfg_backend *b, int line)
{
	size_t n = strspn(b->congestion, "abcdefghijklmnopqrstuvwxyz0123456789_");
	int ret;

	if (strcasecmp(b->congestion, "system") == 0) {
		b->congestion[0] = '\0';
		return;
	}
	if (line == 0)
		return;
	if (b->congestion[n] != '\0' || n >= 16) {
		set_err(p, line, "backend %s: bad value for congestion_control: '%s' (expected "
			"system, or a TCP congestion control such as cubic, at most 15 "
			"lower-case letters, digits or _)", b->name, b->congestion);
		return;
	}
	ret = net_congestion_usable(b->congestion);
	if (ret < 0)
		set_err(p, line, "backend %s: congestion_control = %s cannot be used here: %s "
			"(see /proc/sys/net/ipv4/tcp_allowed_congestion_control)",
			b->name, b->congestion, strerror(-ret));
}

static void
validate_backend(struct parser *p, unsigned i)
{
	struct cfg_backend *b = &p->c->backends[i];
	int *kl = p->bx[i].keyline;

	if (kl[BK_ADDRESS] == 0)
		set_err(p, b->line, "backend %s: address is required", b->name);
	/* Parsed already; refused until the feature exists, never ignored. */
	if (b->protocol != CFG_PROTO_SMTP)
		refuse(p, kl[BK_PROTOCOL], "protocol", enum_name_of(protocols, (int)b->protocol));
	if (!b->tls && kl[BK_TLS_CA])
		set_err(p, kl[BK_TLS_CA], "backend %s: tls_ca needs tls = starttls", b->name);
	validate_congestion(p, b, kl[BK_CONGESTION]);
}

static void
validate_listener(struct parser *p, unsigned i)
{
	struct config *c = p->c;
	struct cfg_listener *l = &c->listeners[i];
	struct listener_extra *lx = &p->lx[i];
	int *kl = lx->keyline;

	if (kl[LK_LISTEN] == 0)
		set_err(p, l->line, "listener %s: listen is required", l->name);
	if (l->tls != CFG_TLS_NONE && !c->tls.enabled)
		set_err(p, kl[LK_TLS], "listener %s: tls = %s needs a [tls] section with "
			"certificate and key", l->name, enum_name_of(listener_tls, (int)l->tls));
	if (l->require_tls && l->tls == CFG_TLS_NONE)
		set_err(p, kl[LK_REQUIRE_TLS], "listener %s: require_tls = yes needs tls = starttls "
			"(or implicit)", l->name);
	if (l->mode == CFG_MODE_SUBMISSION && !c->auth.enabled)
		set_err(p, kl[LK_MODE], "listener %s: mode = submission needs an [auth] section "
			"with users", l->name);
	if (l->mode == CFG_MODE_SUBMISSION && l->tls == CFG_TLS_NONE)
		set_err(p, kl[LK_MODE], "listener %s: mode = submission needs tls = starttls or "
			"implicit (AUTH is offered only over TLS)", l->name);

	/*
	 * The strings were checked by parse_cidr; the matcher wants them
	 * parsed. The PROXY header must come within the command timeout,
	 * and within 10s at most: it is sent at once by any real balancer.
	 */
	unsigned bad = 0;
	if (cidr_list_parse(&l->proxy_trusted_nets, l->proxy_trusted, l->nproxy_trusted, &bad) < 0) {
		set_err(p, kl[LK_PROXY_TRUSTED] ? kl[LK_PROXY_TRUSTED] : l->line,
			"bad value for proxy_trusted: '%s' (expected " NETS_EXPECTED ")",
			bad < l->nproxy_trusted ? l->proxy_trusted[bad] : "");
		l->proxy_trusted_nets = (struct cidr_list){ NULL, 0 };
	}
	l->proxy_timeout_ms = MIN(c->timeout_command_ms, 10 * MS_SEC);

	if (l->mode == CFG_MODE_RELAY && kl[LK_RELAY_DOMAINS] == 0)
		set_err(p, l->line, "listener %s: relay_domains is required in relay mode "
			"(use '*' to accept any domain)", l->name);
	for (unsigned j = 0; j < l->nrelay_domains; j++)
		if (strcmp(l->relay_domains[j], "*") == 0)
			l->relay_any = 1;

	/* Two sockets cannot share an address, across listeners or within one. */
	for (unsigned a = 0; a < l->naddrs; a++) {
		char buf[NET_ADDR_STRLEN];
		for (unsigned k = 0; k <= i; k++) {
			struct cfg_listener *o = &c->listeners[k];
			unsigned end = k == i ? a : o->naddrs;
			for (unsigned b = 0; b < end; b++) {
				if (!net_addr_equal(&l->addrs[a], &o->addrs[b]))
					continue;
				net_addr_format(&l->addrs[a], buf, sizeof(buf));
				if (k == i)
					set_err(p, kl[LK_LISTEN], "listen address %s is given twice", buf);
				else
					set_err(p, kl[LK_LISTEN], "listen address %s is already used by listener %s (line %d)",
						buf, o->name, p->lx[k].keyline[LK_LISTEN]);
			}
		}
	}

	if (kl[LK_BACKENDS] == 0) {
		l->nbackends = c->nbackends;
		l->backends = xcalloc(c->nbackends ? c->nbackends : 1, sizeof(unsigned));
		for (unsigned j = 0; j < c->nbackends; j++)
			l->backends[j] = j;
		return;
	}
	l->backends = xcalloc(lx->nbackend_names, sizeof(unsigned));
	for (unsigned j = 0; j < lx->nbackend_names; j++) {
		const char *want = lx->backend_names[j];
		unsigned k;
		for (k = 0; k < c->nbackends; k++)
			if (strcmp(c->backends[k].name, want) == 0)
				break;
		if (k == c->nbackends) {
			set_err(p, kl[LK_BACKENDS], "listener %s: no [backend %s] in this file", l->name, want);
			return;
		}
		for (unsigned m = 0; m < l->nbackends; m++) {
			if (l->backends[m] == k) {
				set_err(p, kl[LK_BACKENDS], "listener %s: backend %s is named twice", l->name, want);
				return;
			}
		}
		l->backends[l->nbackends++] = k;
	}
}

static void
validate_tls(struct parser *p)
{
	struct config *c = p->c;
	int *kl = p->single_keyline[SEC_TLS];

	c->tls.def.keyline[0] = kl[0];
	c->tls.def.keyline[1] = kl[1];
	if (c->tls.def.certificate == NULL)
		set_err(p, c->tls.def.line, "[tls]: certificate is required");
	else if (c->tls.def.key == NULL)
		set_err(p, c->tls.def.line, "[tls]: key is required");
}

static void
validate_tls_site(struct parser *p, unsigned i)
{
	struct cfg_tls_site *site = &p->c->tls.sites[i];

	if (!p->c->tls.enabled)
		set_err(p, site->line, "[tls %s] needs a [tls] section for clients "
			"that send no name or another one", site->name);
	else if (site->certificate == NULL || site->key == NULL)
		set_err(p, site->line, "[tls %s]: certificate and key are required", site->name);
}

static void
validate_auth(struct parser *p)
{
	struct config *c = p->c;

	c->auth.users_line = p->single_keyline[SEC_AUTH][0];
	if (c->auth.users == NULL)
		set_err(p, p->single_line[SEC_AUTH], "[auth]: users is required");
}

/* One section to validate, by the line of its header. */
struct vitem {
	int line;
	void (*fn)(struct parser *p, unsigned i);
	unsigned i;
};

static void v_listener(struct parser *p, unsigned i) { validate_listener(p, i); }
static void v_backend(struct parser *p, unsigned i) { validate_backend(p, i); }
static void v_tls(struct parser *p, unsigned i) { (void)i; validate_tls(p); }
static void v_auth(struct parser *p, unsigned i) { (void)i; validate_auth(p); }

static int
vitem_cmp(const void *a, const void *b)
{
	return ((const struct vitem *)a)->line - ((const struct vitem *)b)->line;
}

static void
validate(struct parser *p)
{
	struct config *c = p->c;
	size_t n = 0, cap = (size_t)c->nlisteners + c->nbackends + c->tls.nsites + 2;
	struct vitem *v = xcalloc(cap, sizeof(*v));

	for (unsigned i = 0; i < c->nlisteners; i++)
		v[n++] = (struct vitem){ c->listeners[i].line, v_listener, i };
	for (unsigned i = 0; i < c->nbackends; i++)
		v[n++] = (struct vitem){ c->backends[i].line, v_backend, i };
	for (unsigned i = 0; i < c->tls.nsites; i++)
		v[n++] = (struct vitem){ c->tls.sites[i].line, validate_tls_site, i };
	if (c->tls.enabled)
		v[n++] = (struct vitem){ c->tls.def.line, v_tls, 0 };
	if (c->auth.enabled)
		v[n++] = (struct vitem){ p->single_line[SEC_AUTH], v_auth, 0 };
	/* In file order, so the error reported is the first one in the file. */
	qsort(v, n, sizeof(*v), vitem_cmp);
	for (size_t i = 0; i < n && p->err_line < 0; i++)
		v[i].fn(p, v[i].i);
	free(v);
	if (c->nlisteners == 0)
		set_err(p, 0, "no [listener NAME] section (at least one is required)");
	if (c->nbackends == 0)
		set_err(p, 0, "no [backend NAME] section (at least one is required)");
}

/* ------------------------------------------------------------------ */
/* Lifetime                                                            */
/* ------------------------------------------------------------------ */

static void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (unsigned i = 0; i < c->nlisteners; i++) {
		struct cfg_listener *l = &c->listeners[i];
		free(l->name);
		free(l->addrs);
		free_strv(l->proxy_trusted, l->nproxy_trusted);
		cidr_list_free(&l->proxy_trusted_nets);
		free_strv(l->relay_domains, l->nrelay_domains);
		free(l->backends);
	}
	free(c->listeners);
	for (unsigned i = 0; i < c->nbackends; i++) {
		free(c->backends[i].name);
		free(c->backends[i].tls_ca);
		free(c->backends[i].congestion);
	}
	free(c->backends);
	if (c->assets_free)
		c->assets_free(c->assets);
	free(c->tls.def.certificate);
	free(c->tls.def.key);
	for (unsigned i = 0; i < c->tls.nsites; i++) {
		free(c->tls.sites[i].name);
		free(c->tls.sites[i].certificate);
		free(c->tls.sites[i].key);
	}
	free(c->tls.sites);
	free(c->auth.users);
	free(c->redis.password);
	free(c->redis.key_prefix);
	cidr_list_free(&c->access.allow);
	cidr_list_free(&c->access.deny);
	free(c->path);
	free(c->hostname);
	free(c->log);
	free(c);
}

static struct config *
config_new(const char *path)
{
	struct config *c = xcalloc(1, sizeof(*c));
	char host[256];

	c->path = xstrdup(path);
	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	c->hostname = xstrdup(host);
	c->workers = 0;
	c->max_message_size = 50ULL << 20;
	c->max_recipients = 100;
	c->max_errors = 10;
	c->max_junk_commands = 0;
	c->timeout_command_ms = 5 * MS_MIN;
	c->timeout_data_ms = 10 * MS_MIN;
	c->drain_timeout_ms = 30 * MS_SEC;
	c->log = xstrdup("stderr");
	c->log_json = 0;
	c->log_level = LOG_LVL_INFO;
	/* The defaults of [redis] and [limits] are there even when the section is not. */
	if (net_addr_parse("127.0.0.1:6379", &c->redis.addr, host, sizeof(host)) < 0)
		abort();
	c->redis.key_prefix = xstrdup("mxgate:");
	c->redis.timeout_ms = 100;
	c->redis.on_failure_tempfail = 0;
	c->limits.ipv6_prefix = 64;
	c->tls.protocols = CFG_TLS_V12 | CFG_TLS_V13;
	c->tls.session_tickets = 1;
	c->auth.mechanisms = CFG_AUTH_PLAIN | CFG_AUTH_LOGIN;
	c->refs = 1;
	return c;
}

int
config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct parser p = {
		.path = path, .err = err, .errlen = errlen, .err_line = -1,
	};
	int rc;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	p.f = fopen(path, "r");
	if (p.f == NULL) {
		set_err(&p, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	p.c = config_new(path);
	rc = ini_parse_stream(reader, &p, ini_cb, &p);
	if (p.err_line < 0 && ferror(p.f))
		set_err(&p, p.lineno, "read error: %s", strerror(errno));
	/* inih's own complaint (a line with no '=') if it came first. */
	if (rc > 0 && (p.err_line < 0 || rc < p.err_line)) {
		p.err_line = -1;
		set_err(&p, rc, "syntax error (expected 'key = value' or '[section]')");
	} else if (rc < 0 && p.err_line < 0) {
		set_err(&p, 0, "out of memory");
	}
	fclose(p.f);
	free(p.buf);

	if (p.err_line < 0)
		validate(&p);

	for (unsigned i = 0; i < p.c->nlisteners; i++)
		free_strv(p.lx[i].backend_names, p.lx[i].nbackend_names);
	free(p.lx);
	free(p.bx);
	if (p.err_line >= 0) {
		config_free(p.c);
		return -1;
	}
	*out = p.c;
	return 0;
}

void
config_ref(struct config *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
}

void
config_unref(struct config *c)
{
	if (c == NULL)
		return;
	/* Acquire-release so the last owner sees every other owner's reads done. */
	if (__atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		config_free(c);
}
