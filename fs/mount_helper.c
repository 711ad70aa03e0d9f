/*
 * mount_helper.c — mount.sdafs, the helper mount(8) runs for `mount -t sdafs`
 * and for sdafs lines in /etc/fstab.
 *
 * The one idea: this program decides nothing about the mount.  It removes
 * the generic mount(8)/fstab options that mean nothing to the daemon (nofail,
 * _netdev, x-*, rw, ...), finds the sdafs binary that was installed or built
 * alongside it, and execv()s `sdafs SRC MOUNTPOINT -o OPTIONS`, so the
 * daemon's exit status is mount's.  No option text ever reaches a shell.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROG "mount.sdafs"
#define DAEMON "sdafs"
#define OPTIONS_MAX 65536	/* bytes of filtered -o text, NUL included */
#define ERRLEN (PATH_MAX + 512)	/* room for a path and words about it */

struct helper_args {
	char *src;		/* argv strings, handed on to execv() */
	char *mountpoint;
	bool fake;		/* -f: print the command instead of running it */
	bool verbose;		/* -v: print the command, then run it */
	bool help;
	char options[OPTIONS_MAX];	/* filtered, comma-separated */
	size_t options_len;
};

/* Options mount(8) and fstab hand to every helper; none is for the daemon. */
static const char *const generic_options[] = {
	"defaults", "auto", "noauto", "user", "nouser", "users", "owner",
	"group", "_netdev", "nofail", "rw", "ro", "exec", "noexec", "suid",
	"nosuid", "dev", "nodev", "sync", "async", "atime", "noatime",
	"relatime", "norelatime", "strictatime", "nostrictatime", "lazytime",
	"nolazytime", "diratime", "nodiratime", "loud", NULL
};

/* Prefixes of generic options; "user=" is what mount adds for user mounts. */
static const char *const generic_prefixes[] = {
	"comment=", "x-", "user=", NULL
};

#define SYNOPSIS "usage: " PROG " SRC MOUNTPOINT [-sfnv] [-o OPTIONS] [-t sdafs]\n"

static void usage(FILE *out)
{
	fprintf(out, SYNOPSIS
		"Runs `" DAEMON " SRC MOUNTPOINT -o OPTIONS` for mount(8) and /etc/fstab,\n"
		"without the generic mount options (rw, ro, nofail, _netdev, x-*, ...).\n"
		"  -f         print the command that would run, and exit\n"
		"  -v         print the command before running it\n"
		"  -s, -n     accepted and ignored\n"
		"  -o OPTS    options (may be given more than once)\n"
		"  -t TYPE    accepted and ignored\n"
		"  -h, --help this help\n"
		"See sdafs(8) for the options the daemon takes.\n");
}

static int fail(char *err, int code, const char *msg, const char *what)
{
	snprintf(err, ERRLEN, "%s%s", msg, what ? what : "");
	return code;
}

static bool is_generic_option(const char *opt, size_t len)
{
	for (const char *const *g = generic_options; *g; g++)
		if (strlen(*g) == len && memcmp(*g, opt, len) == 0)
			return true;
	for (const char *const *p = generic_prefixes; *p; p++)
		if (len >= strlen(*p) && memcmp(*p, opt, strlen(*p)) == 0)
			return true;
	return false;
}

/*
 * Length of the option at the start of s.  A comma ends it unless escaped
 * with a backslash (libfuse's convention) or inside double quotes
 * (libmount's), so x-foo="a,b" is dropped whole instead of half kept.
 */
static size_t option_length(const char *s)
{
	bool quoted = false;
	size_t i;

	for (i = 0; s[i] && (quoted || s[i] != ','); i++) {
		if (s[i] == '\\' && s[i + 1])
			i++;
		else if (s[i] == '"')
			quoted = !quoted;
	}
	return i;
}

/* Append the daemon's options from one -o argument to a->options. */
static int add_options(struct helper_args *a, const char *list, char *err)
{
	/* argv strings cannot hold a NUL; a newline would split a mount-table line. */
	if (strchr(list, '\n'))
		return fail(err, -EINVAL, "mount options contain a newline", NULL);
	while (*list) {
		size_t len = option_length(list);
		size_t sep = a->options_len ? 1 : 0;

		if (len && !is_generic_option(list, len)) {
			if (a->options_len + sep + len + 1 > OPTIONS_MAX)
				return fail(err, -E2BIG, "mount options are longer than 64 KiB", NULL);
			if (sep)
				a->options[a->options_len++] = ',';
			memcpy(a->options + a->options_len, list, len);
			a->options_len += len;
			a->options[a->options_len] = '\0';
		}
		list += len;
		if (*list == ',')
			list++;
	}
	return 0;
}

/* The value of -o/-t: the rest of the cluster ("-oview=native") or the next argument. */
static int flag_value(int argc, char *argv[], int *i, const char *rest,
		      const char **value, char *err)
{
	if (*rest) {
		*value = rest;
		return 0;
	}
	if (*i + 1 >= argc)
		return fail(err, -EINVAL, "option requires an argument: ", argv[*i]);
	*value = argv[++*i];
	return 0;
}

/* One cluster of short flags such as "-sfnv" or "-oview=native". */
static int parse_flags(struct helper_args *a, int argc, char *argv[], int *i,
		       char *err)
{
	const char *value;
	int rc;

	for (const char *c = argv[*i] + 1; *c; c++) {
		switch (*c) {
		case 'f':
			a->fake = true;
			break;
		case 'v':
			a->verbose = true;
			break;
		case 's':	/* sloppy: the daemon judges options, not us */
		case 'n':	/* no mtab: there is none to write */
			break;
		case 'h':
			a->help = true;
			break;
		case 'o':
			rc = flag_value(argc, argv, i, c + 1, &value, err);
			return rc < 0 ? rc : add_options(a, value, err);
		case 't':	/* the type is sdafs, or mount would not run us */
			return flag_value(argc, argv, i, c + 1, &value, err);
		default:
			return fail(err, -EINVAL, "unknown option: ", argv[*i]);
		}
	}
	return 0;
}

/* Positional arguments and flags may come in any order; "--" ends flags. */
static int parse_args(struct helper_args *a, int argc, char *argv[], char *err)
{
	bool flags_done = false;
	int npos = 0;

	for (int i = 1; i < argc; i++) {
		char *arg = argv[i];
		int rc;

		if (!flags_done && strcmp(arg, "--") == 0) {
			flags_done = true;
		} else if (!flags_done && strcmp(arg, "--help") == 0) {
			a->help = true;
		} else if (!flags_done && arg[0] == '-' && arg[1]) {
			rc = parse_flags(a, argc, argv, &i, err);
			if (rc < 0)
				return rc;
		} else if (npos == 0) {
			a->src = arg;
			npos++;
		} else if (npos == 1) {
			a->mountpoint = arg;
			npos++;
		} else {
			return fail(err, -EINVAL, "unexpected argument: ", arg);
		}
	}
	if (!a->help && (!a->src || !a->mountpoint))
		return fail(err, -EINVAL, "SRC and MOUNTPOINT are required", NULL);
	return 0;
}

static bool is_program(const char *path)
{
	return access(path, X_OK) == 0;
}

/*
 * The helper's own directory, without a trailing slash ("" for "/"), from
 * the real path of the running binary.  Fails rather than guess: a guess
 * such as "." would make root run whatever sdafs the current directory has.
 */
static bool helper_dir(const char *argv0, char *dir)
{
	if (!realpath("/proc/self/exe", dir) &&
	    !(strchr(argv0, '/') && realpath(argv0, dir)))
		return false;
	*strrchr(dir, '/') = '\0';
	return true;
}

/*
 * The daemon that belongs to this helper: next to its real path (a symlink
 * /sbin/mount.sdafs -> REPO/build/mount.sdafs finds REPO/build/sdafs), then
 * PREFIX/bin beside PREFIX/sbin, then the usual system places.
 */
static int find_daemon(const char *argv0, char *path, size_t size, char *err)
{
	static const char *const system_paths[] = {
		"/usr/local/bin/" DAEMON, "/usr/bin/" DAEMON, NULL
	};
	char dir[PATH_MAX];
	bool have_dir = helper_dir(argv0, dir);

	if (have_dir) {
		const char *parent_end = strrchr(dir, '/');

		snprintf(path, size, "%s/" DAEMON, dir);
		if (is_program(path))
			return 0;
		snprintf(path, size, "%.*s/bin/" DAEMON,
			 parent_end ? (int)(parent_end - dir) : 0, dir);
		if (is_program(path))
			return 0;
	}
	for (const char *const *p = system_paths; *p; p++) {
		snprintf(path, size, "%s", *p);
		if (is_program(path))
			return 0;
	}
	snprintf(err, ERRLEN, "cannot find the " DAEMON
		 " program next to %s or in /usr/local/bin, /usr/bin",
		 !have_dir ? "this helper" : *dir ? dir : "/");
	return -ENOENT;
}

/* Print argv as a shell would need it typed; for people, never for a shell. */
static void print_command(FILE *out, char *const argv[])
{
	static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				   "0123456789_-+=,./:@%";

	for (int i = 0; argv[i]; i++) {
		const char *s = argv[i];

		fputs(i ? " " : "", out);
		if (*s && s[strspn(s, safe)] == '\0') {
			fputs(s, out);
			continue;
		}
		fputc('\'', out);
		for (; *s; s++) {
			if (*s == '\'')
				fputs("'\\''", out);	/* close, literal ', reopen */
			else
				fputc(*s, out);
		}
		fputc('\'', out);
	}
	fputc('\n', out);
}

/* A path starting with '-' would read as a flag; "./-x" names the same file. */
static char *operand(char *path)
{
	char *dotted;

	if (path[0] != '-')
		return path;
	if (asprintf(&dotted, "./%s", path) < 0)
		return NULL;
	return dotted;		/* lives until execv() replaces us */
}

int main(int argc, char *argv[])
{
	static struct helper_args args;
	char daemon[PATH_MAX + 16];
	char err[ERRLEN];
	char *cmd[7];
	int n = 0;

	if (parse_args(&args, argc, argv, err) < 0) {
		fprintf(stderr, PROG ": %s\n" SYNOPSIS, err);
		return 1;
	}
	if (args.help) {
		usage(stdout);
		return 0;
	}
	if (find_daemon(argv[0], daemon, sizeof(daemon), err) < 0) {
		fprintf(stderr, PROG ": %s\n", err);
		return 1;
	}

	cmd[n++] = daemon;
	cmd[n++] = operand(args.src);
	cmd[n++] = operand(args.mountpoint);
	if (!cmd[1] || !cmd[2]) {
		fprintf(stderr, PROG ": out of memory\n");
		return 1;
	}
	if (args.options_len) {
		cmd[n++] = "-o";
		cmd[n++] = args.options;
	}
	cmd[n] = NULL;

	if (args.fake || args.verbose)
		print_command(stdout, cmd);
	if (args.fake)
		return 0;
	fflush(stdout);
	execv(daemon, cmd);
	fprintf(stderr, PROG ": cannot run %s: %s\n", daemon, strerror(errno));
	return 1;
}
