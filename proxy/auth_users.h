/*
 * auth_users.h - the [auth] users file of submission mode and password
 * verification against it.
 *
 * File format, one account per line: NAME:HASH[:anything...]. HASH is a
 * crypt(3) string as `mkpasswd` writes it: yescrypt ($y$), sha512-crypt
 * ($6$) or bcrypt ($2b$, $2y$). Fields after the hash are ignored, so
 * /etc/shadow lines work; a line may be indented, lines starting with '#'
 * and blank ones are skipped. Names are matched exactly (case-sensitive),
 * 1..255 octets without ':', blanks or control characters.
 *
 * A loaded table is immutable and shared by every worker thread through
 * an atomic reference count: a reload loads a new table and hands it over
 * like a config snapshot, and whoever still holds the old one (a session
 * whose verification is running) keeps it valid until its unref. Take a
 * new reference only from one you already hold: reading a shared pointer
 * and then calling auth_users_ref races with its last unref.
 *
 * Verification is slow by design (yescrypt: tens of ms), so it belongs on
 * an offload thread (core/offload.h), never on a ring thread.
 */
#ifndef PROXY_AUTH_USERS_H
#define PROXY_AUTH_USERS_H

#include <stddef.h>

struct auth_users;

/*
 * Reads and checks path. Returns a table holding one reference, or NULL
 * with err set to "PATH:LINE: message" (LINE 0 when the file as a whole
 * is the problem: unreadable, too large). Checks: a ':' after the name,
 * a non-empty valid name, a hash of a supported scheme whose shape is
 * right (crypt_checksalt plus the length of its final field, so a
 * truncated line is caught), no name twice. Also computes the dummy hash
 * below, which costs one hash computation.
 */
struct auth_users *auth_users_load(const char *path, char *err, size_t errlen);

/* Another reference to t (which the caller holds); returns t. */
struct auth_users *auth_users_ref(struct auth_users *t);
/* Drops one reference; the last frees the table (its memory wiped). NULL is ignored. */
void auth_users_unref(struct auth_users *t);

/* Number of accounts. */
size_t auth_users_count(const struct auth_users *t);

/* The crypt hash of name (NUL-terminated), or NULL when there is no such account. Valid while t is. */
const char *auth_users_lookup(const struct auth_users *t, const char *name);

/*
 * A hash of random bytes nobody knows, computed at load with the setting
 * (scheme, cost, salt) of the first account of the table's most common
 * scheme, or yescrypt at its default cost for an empty table: verifying
 * against it costs what a real account costs, so an unknown name is not
 * told apart by the time the answer takes. Never matches.
 */
const char *auth_users_dummy_hash(const struct auth_users *t);

/*
 * crypt_rn(password, hash) compared with hash in constant time. The 32 KB
 * struct crypt_data is allocated per call (wiped and freed before
 * return), so any thread may call this. Returns 1 on a match, else 0:
 * a mismatch, and also when it could not verify (NULL argument, out of
 * memory, a hash libcrypt refuses), so a plain "if (r)" fails closed.
 */
int auth_verify_password(const char *hash, const char *password);

/*
 * The whole check for one AUTH attempt: looks name up and verifies
 * password against its hash, or against the dummy hash when name is
 * unknown (the cost is then the same, and the answer 0). Returns 1 only
 * for a known name with the right password, else 0.
 */
int auth_users_check(const struct auth_users *t, const char *name, const char *password);

#endif
