// A real PostgreSQL 15 server for the store tests, run by deploy/pg-private.sh in a temporary
// directory on a loopback port (as the `postgres` user when the tests run as root).
//
//   static pg_server& pg = pg_server::shared();   // one server per test executable
//   std::string url = pg.create_database("t1");    // a fresh, empty database for one test
//
// PLUGMON_SOURCE_DIR must be defined (the project's source directory) to find the script.
#pragma once

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>
#include <unistd.h>
#include <sys/stat.h>

#include <pqxx/pqxx>

namespace plugmon::test {

class pg_server {
public:
    /// Starts a server in a new temporary directory. Throws std::runtime_error when it cannot.
    pg_server() {
        char tmpl[] = "/tmp/plugmon-pg.XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        parent_ = tmpl;
        ::chmod(parent_.c_str(), 0711);  // the server user must be able to enter it
        dir_ = parent_ + "/pg";
        url_ = run("start " + quote(dir_));
    }
    /// Starts a server with extra postgresql.conf lines (for example
    /// "shared_preload_libraries = 'pg_stat_statements'"): started, stopped, configured, started
    /// again on the same port. Throws std::runtime_error when it cannot.
    explicit pg_server(const std::vector<std::string>& conf_lines) : pg_server() {
        stop();
        std::ofstream conf(dir_ + "/data/postgresql.conf", std::ios::app);
        for (const auto& line : conf_lines) conf << line << '\n';
        conf.close();
        if (!conf) throw std::runtime_error("cannot append to " + dir_ + "/data/postgresql.conf");
        restart();
    }
    ~pg_server() {
        try {
            run("destroy " + quote(dir_));
        } catch (...) {
        }
        ::rmdir(parent_.c_str());
    }
    pg_server(const pg_server&) = delete;
    pg_server& operator=(const pg_server&) = delete;

    /// The server of this test executable, started on first use and removed at exit.
    static pg_server& shared() {
        static pg_server server;
        return server;
    }

    /// postgresql://plugmon:PASSWORD@127.0.0.1:PORT/plugmon?sslmode=disable
    const std::string& url() const { return url_; }
    /// The same server, another database.
    std::string url_of(const std::string& database) const {
        std::string u = url_;
        const auto q = u.find('?');
        const auto slash = u.rfind('/', q);
        return u.substr(0, slash + 1) + database + u.substr(q);
    }
    /// Drops (if present) and creates `name`; returns its URL.
    std::string create_database(const std::string& name) {
        pqxx::connection c(url_);
        pqxx::nontransaction tx(c);
        tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name) + " WITH (FORCE)");
        tx.exec("CREATE DATABASE " + tx.quote_name(name));
        return url_of(name);
    }
    int port() const { return std::stoi(url_.substr(url_.rfind(':') + 1)); }
    const std::string& dir() const { return dir_; }

    /// pg_ctl stop -m mode ("fast" or "immediate": a crash, no shutdown checkpoint).
    void stop(const std::string& mode = "fast") { run("stop " + quote(dir_) + " " + mode); }
    /// Starts it again on the same port.
    void restart() { run("restart " + quote(dir_)); }

    /// Runs deploy/pg-private.sh with `args`; returns its stdout without the last newline.
    static std::string run(const std::string& args) {
        const std::string cmd =
            "bash " + quote(std::string(PLUGMON_SOURCE_DIR) + "/deploy/pg-private.sh") + " " + args;
        std::unique_ptr<FILE, int (*)(FILE*)> p(::popen(cmd.c_str(), "r"), ::pclose);
        if (!p) throw std::runtime_error("cannot run: " + cmd);
        std::string out;
        std::array<char, 512> buf{};
        std::size_t n;
        while ((n = std::fread(buf.data(), 1, buf.size(), p.get())) > 0) out.append(buf.data(), n);
        const int status = ::pclose(p.release());
        if (status != 0) throw std::runtime_error("failed (status " + std::to_string(status) + "): " + cmd);
        while (!out.empty() && out.back() == '\n') out.pop_back();
        return out;
    }

private:
    static std::string quote(const std::string& s) {
        std::string q = "'";
        for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
        return q + "'";
    }
    std::string parent_, dir_, url_;
};

}  // namespace plugmon::test
