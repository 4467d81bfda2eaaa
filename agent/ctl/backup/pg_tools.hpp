// Running PostgreSQL's client programs (pg_dump, pg_restore) for plugmonctl backup and restore:
// finding them, and passing the connection without putting its password on a command line.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace plugmon::ctl::backup {

/// Bad input (a missing or malformed option): plugmonctl prints it and exits with status 2.
class input_error : public std::runtime_error {
public:
    using runtime_error::runtime_error;
};

/// A program could not be found or started.
class tool_error : public std::runtime_error {
public:
    using runtime_error::runtime_error;
};

/// A connection string split for a child program: `conninfo` (key=value form) holds everything
/// but the password, which travels in the child's environment (PGPASSWORD) instead of its argv,
/// where any local user could read it in /proc. Allocates; thread-safe.
struct child_connection {
    std::string conninfo;
    std::string password;  ///< empty: none given (libpq may still use ~/.pgpass)
};

/// Splits `url` (URL or key=value form). Throws input_error naming the problem (libpq's message,
/// with the password masked) when it does not parse.
child_connection split_connection(const std::string& url);

/// The path of `name`: in `pg_bin` when given (and nowhere else), else the first executable on
/// PATH, else /usr/lib/postgresql/15/bin. Throws input_error for a `pg_bin` without it, else
/// tool_error naming where it looked.
std::string find_pg_program(const std::string& name, const std::string& pg_bin);

/// What a finished child program left behind.
struct child_result {
    int status = -1;  ///< exit status; 128 + N when killed by signal N
    std::string out;  ///< its stdout
    std::string err;  ///< its stderr
};

/// Runs `program` with `args` (no shell), `password` (if not empty) as PGPASSWORD in its
/// environment, stdin from /dev/null; waits for it and returns its output. Throws tool_error when
/// it cannot be started. Blocks; not thread-safe (fork in a single-threaded program).
child_result run_program(const std::string& program, const std::vector<std::string>& args,
                         const std::string& password);

/// The last non-empty lines of a program's stderr, joined by "; ", for an error message.
std::string tail_lines(const std::string& text, int lines = 3);

}  // namespace plugmon::ctl::backup
