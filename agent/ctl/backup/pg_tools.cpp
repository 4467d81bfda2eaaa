// pg_dump and pg_restore as child processes: lookup, a password-free argv, captured output.
#include "ctl/backup/pg_tools.hpp"

#include "common/conninfo.hpp"

#include <libpq-fe.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>

extern char** environ;

namespace plugmon::ctl::backup {

namespace {

/// A value for the key=value form: single-quoted, with \ and ' escaped.
std::string conninfo_value(const char* v) {
    std::string q = "'";
    for (const char* p = v; *p; ++p) {
        if (*p == '\\' || *p == '\'') q += '\\';
        q += *p;
    }
    return q + "'";
}

bool is_executable(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
}

/// An unlinked temporary file for a child's output.
int temp_fd() {
    char tmpl[] = "/tmp/plugmonctl-out.XXXXXX";
    const int fd = ::mkstemp(tmpl);
    if (fd < 0)
        throw tool_error(std::string("cannot create a temporary file: ") + std::strerror(errno));
    ::unlink(tmpl);
    return fd;
}

std::string read_all(int fd) {
    std::string out;
    char buf[65536];
    ::lseek(fd, 0, SEEK_SET);
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0)
            out.append(buf, static_cast<std::size_t>(n));
        else if (n == 0 || errno != EINTR)
            break;
    }
    return out;
}

}  // namespace

child_connection split_connection(const std::string& url) {
    char* err = nullptr;
    std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> opts(
        ::PQconninfoParse(url.c_str(), &err), ::PQconninfoFree);
    if (!opts) {
        std::string msg = err ? err : "out of memory";
        if (err) ::PQfreemem(err);
        while (!msg.empty() && msg.back() == '\n') msg.pop_back();
        throw input_error("--postgres \"" + agent::mask_password(url) + "\": " + msg);
    }
    child_connection c;
    for (const PQconninfoOption* o = opts.get(); o->keyword != nullptr; ++o) {
        if (o->val == nullptr || *o->val == '\0') continue;
        if (std::strcmp(o->keyword, "password") == 0) {
            c.password = o->val;
            continue;
        }
        if (!c.conninfo.empty()) c.conninfo += ' ';
        c.conninfo += std::string(o->keyword) + "=" + conninfo_value(o->val);
    }
    return c;
}

std::string find_pg_program(const std::string& name, const std::string& pg_bin) {
    if (!pg_bin.empty()) {
        const std::string p = pg_bin + "/" + name;
        if (is_executable(p)) return p;
        throw input_error("--pg-bin: no executable " + name + " in " + pg_bin);
    }
    std::string looked;
    if (const char* path = std::getenv("PATH")) {
        std::stringstream dirs(path);
        std::string dir;
        while (std::getline(dirs, dir, ':')) {
            if (dir.empty()) continue;
            if (is_executable(dir + "/" + name)) return dir + "/" + name;
        }
        looked = "PATH, ";
    }
    const std::string fallback = "/usr/lib/postgresql/15/bin/" + name;
    if (is_executable(fallback)) return fallback;
    throw tool_error("cannot find " + name + " (looked in " + looked +
                     "/usr/lib/postgresql/15/bin): install postgresql-client or give --pg-bin DIR");
}

child_result run_program(const std::string& program, const std::vector<std::string>& args,
                         const std::string& password) {
    std::vector<std::string> env_text;
    for (char** e = environ; *e != nullptr; ++e)
        if (std::strncmp(*e, "PGPASSWORD=", 11) != 0 || password.empty()) env_text.emplace_back(*e);
    if (!password.empty()) env_text.push_back("PGPASSWORD=" + password);
    std::vector<char*> envp, argv;
    for (auto& e : env_text) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_text{program};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    for (auto& a : argv_text) argv.push_back(a.data());
    argv.push_back(nullptr);

    const int out_fd = temp_fd();
    const int err_fd = temp_fd();
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(out_fd);
        ::close(err_fd);
        throw tool_error("cannot start " + program + ": " + std::strerror(errno));
    }
    if (pid == 0) {
        const int in = ::open("/dev/null", O_RDONLY);
        if (in >= 0) ::dup2(in, STDIN_FILENO);
        ::dup2(out_fd, STDOUT_FILENO);
        ::dup2(err_fd, STDERR_FILENO);
        ::execve(program.c_str(), argv.data(), envp.data());
        const std::string msg = "cannot run " + program + ": " + std::strerror(errno) + "\n";
        [[maybe_unused]] const ssize_t w = ::write(STDERR_FILENO, msg.data(), msg.size());
        ::_exit(127);
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    child_result r;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = read_all(out_fd);
    r.err = read_all(err_fd);
    ::close(out_fd);
    ::close(err_fd);
    return r;
}

std::string tail_lines(const std::string& text, int lines) {
    std::vector<std::string> all;
    std::stringstream in(text);
    std::string line;
    while (std::getline(in, line))
        if (!line.empty()) all.push_back(line);
    std::string out;
    const std::size_t from = all.size() > static_cast<std::size_t>(lines) ? all.size() - lines : 0;
    for (std::size_t i = from; i < all.size(); ++i) out += (out.empty() ? "" : "; ") + all[i];
    return out.empty() ? "(no message)" : out;
}

}  // namespace plugmon::ctl::backup
