/*
 * number.h — a count written by a user or a launcher (an option value, an
 * environment variable), read strictly: the whole text, decimal, >= 0.
 * strtol alone takes "3x", " 3" and "" as numbers.
 */
#ifndef SDAFS_NUMBER_H
#define SDAFS_NUMBER_H

/* The non-negative decimal integer that is all of s, or -1 (also for NULL,
 * "", a sign-less overflow or trailing text). */
long sd_whole_number(const char *s);

#endif
