/*
 * commands.h — sdafs convert and sdafs verify (commands.c): a view's files
 * written into a directory, or a directory checked against a view, where
 * nothing can be mounted.
 */
#ifndef SDAFS_COMMANDS_H
#define SDAFS_COMMANDS_H

/* argv[0] is the command's name.  The exit status: convert 0 when every
 * file is written and synced, else 1; verify 0 equal, 1 different, 2 an
 * error (a bad SRC, a DIR that cannot be read, a bad option). */
int convert_main(int argc, char **argv);
int verify_main(int argc, char **argv);

#endif
