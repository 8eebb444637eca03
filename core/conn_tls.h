/*
 * conn_tls.h - conn's internal hooks into its TLS record layer
 * (conn_tls.c). Only conn.c includes this; users see conn.h.
 */
#ifndef CORE_CONN_TLS_H
#define CORE_CONN_TLS_H

#include "conn.h"

/* Ciphertext (or clear text before TLS) straight onto the send queue. */
int conn_raw_write(struct conn *c, const void *p, size_t n);
/* Queues on_closed once nothing is in flight and the conn is closing. */
void conn_maybe_finish(struct conn *c);
/* Receive failed or the peer ended: on_eof (or close). */
void conn_fail(struct conn *c, int err);

/* Received ciphertext: handshake, or decrypt and hand plaintext to on_recv. */
void conn_tls_input(struct conn *c, const char *data, size_t len);
/* Plaintext to send, encrypted at the next conn_flush. */
int conn_tls_queue(struct conn *c, const void *p, size_t n);
void conn_tls_encrypt(struct conn *c);
/* Input resumed: deliver what was decrypted or buffered while paused. */
void conn_tls_input_resumed(struct conn *c);
/* Graceful close: close_notify after the queued plaintext. */
void conn_tls_shutdown(struct conn *c);
void conn_tls_ring_turn(struct ring *r);
void conn_tls_free(struct conn *c);

#endif
