/* version.h - the release number printed by -V and in the start-up log. */
#ifndef PROXY_VERSION_H
#define PROXY_VERSION_H
#define MXGATE_VERSION "0.1.0"
#endif
