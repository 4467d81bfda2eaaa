// Implementation of the multi-process test helpers.
#include "harness.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

extern char** environ;

namespace plugmon::test {

temp_dir::temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/plugmon-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

process::process(std::vector<std::string> argv, const std::vector<std::string>& extra_env,
                 const std::string& stdout_path, const std::string& stderr_path,
                 const std::string& stdin_path) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
    for (const auto& kv : extra_env) {
        const std::string key = kv.substr(0, kv.find('=') + 1);
        std::erase_if(env, [&](const std::string& s) { return s.rfind(key, 0) == 0; });
        env.push_back(kv);
    }
    std::vector<char*> av, ev;
    for (auto& a : argv) av.push_back(a.data());
    av.push_back(nullptr);
    for (auto& e : env) ev.push_back(e.data());
    ev.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        const int out = ::open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int err = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int in = ::open(stdin_path.c_str(), O_RDONLY);
        if (in >= 0) ::dup2(in, 0);
        if (out >= 0) ::dup2(out, 1);
        if (err >= 0) ::dup2(err, 2);
        ::execve(av[0], av.data(), ev.data());
        std::fprintf(stderr, "exec %s: %s\n", av[0], std::strerror(errno));
        ::_exit(127);
    }
}

process::~process() {
    if (!reaped_ && pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status_, 0);
    }
}

void process::signal(int sig) const {
    if (!reaped_) ::kill(pid_, sig);
}

std::optional<int> process::wait(std::chrono::milliseconds timeout) {
    if (reaped_) return status_;
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const pid_t r = ::waitpid(pid_, &status_, WNOHANG);
        if (r == pid_) {
            reaped_ = true;
            return status_;
        }
        if (std::chrono::steady_clock::now() >= end) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

bool process::running() { return !wait(std::chrono::milliseconds(0)).has_value(); }

std::string read_file(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pred();
}

namespace {

/// One request with Connection: close; the status and the body, or nullopt when unreachable.
std::optional<std::pair<int, std::string>> http_exchange(int port, const std::string& request) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::nullopt;
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(std::uint16_t(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return std::nullopt;
    }
    const std::string& req = request;
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) {
        ::close(fd);
        return std::nullopt;
    }
    std::string resp;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        resp.append(buf, std::size_t(n));
    }
    ::close(fd);
    const auto sp = resp.find(' ');
    const auto hdr_end = resp.find("\r\n\r\n");
    if (sp == std::string::npos || hdr_end == std::string::npos) return std::nullopt;
    return std::make_pair(std::atoi(resp.c_str() + sp + 1), resp.substr(hdr_end + 4));
}

}  // namespace

int unused_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    const bool bound = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                       ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    if (fd >= 0) ::close(fd);
    if (!bound) throw std::runtime_error("cannot bind a loopback port");
    return ntohs(a.sin_port);
}

std::optional<std::string> http_get(int port, const std::string& target, int* status) {
    const auto r = http_exchange(
        port, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if (!r) return std::nullopt;
    if (status) *status = r->first;
    if (r->first < 200 || r->first >= 300) return std::nullopt;
    return r->second;
}

std::optional<std::pair<int, std::string>> http_post(int port, const std::string& target,
                                                     const std::string& bearer) {
    std::string req = "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
    if (!bearer.empty()) req += "Authorization: Bearer " + bearer + "\r\n";
    return http_exchange(port, req + "Content-Length: 0\r\n\r\n");
}

metrics metrics::parse(const std::string& text) {
    metrics m;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        const auto sp = line.rfind(' ');
        if (sp == std::string::npos) continue;
        m.samples[line.substr(0, sp)] = std::strtod(line.c_str() + sp + 1, nullptr);
    }
    return m;
}

double metrics::sum(const std::string& name, const std::map<std::string, std::string>& match) const {
    double total = 0;
    for (const auto& [key, v] : samples) {
        const auto brace = key.find('{');
        if (key.substr(0, brace) != name) continue;
        bool ok = true;
        for (const auto& [k, val] : match)
            if (key.find(k + "=\"" + val + "\"") == std::string::npos) ok = false;
        if (ok) total += v;
    }
    return total;
}

agent::agent(const std::string& runtime_dir, const std::string& log_path,
             std::vector<std::string> extra_args)
    : log_(log_path) {
    std::vector<std::string> argv{agent_binary(), "--runtime-dir", runtime_dir, "--listen",
                                  "127.0.0.1:0", "--drain-interval", "200us"};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    proc_ = std::make_unique<process>(argv, std::vector<std::string>{}, log_path, log_path + ".err");
    const std::regex re("HTTP on http://127\\.0\\.0\\.1:([0-9]+)/metrics");
    const bool up = wait_until(
        [&] {
            std::smatch m;
            const std::string log = read_file(log_path);
            if (std::regex_search(log, m, re)) port_ = std::stoi(m[1]);
            return port_ != 0 || !proc_->running();
        },
        std::chrono::seconds(20));
    if (!up || port_ == 0)
        throw std::runtime_error("agent did not start: " + read_file(log_path) + read_file(log_path + ".err"));
}

std::string agent::metrics_text() const { return http_get(port_, "/metrics").value_or(""); }
metrics agent::scrape() const { return metrics::parse(metrics_text()); }
std::string agent::producers_json() const { return http_get(port_, "/api/v1/producers").value_or("{}"); }

int agent::stop() {
    proc_->signal(SIGTERM);
    const auto st = proc_->wait(std::chrono::seconds(30));
    return st ? *st : -1;
}

int promtool_check_metrics(const std::string& dir, const std::string& text, std::string& output) {
    const std::string in = dir + "/promtool.in", out = dir + "/promtool.out";
    {
        std::ofstream f(in);
        f << text;
    }
    process p({promtool_binary(), "check", "metrics"}, {}, out, out + ".err", in);
    const auto st = p.wait(std::chrono::seconds(60));
    output = read_file(out) + read_file(out + ".err");
    return st && WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
}

std::string agent_binary() { return PLUGMON_AGENT_BIN; }
std::string loadgen_binary() { return PLUGMON_LOADGEN_BIN; }

loadgen_run::loadgen_run(const temp_dir& dir, const std::string& name, const std::string& runtime_dir,
                         std::vector<std::string> args)
    : out_(dir.path() + "/" + name + ".out"), err_(dir.path() + "/" + name + ".err") {
    args.insert(args.begin(), loadgen_binary());
    args.push_back("--json");
    proc_ = std::make_unique<process>(args, std::vector<std::string>{"PLUGMON_RUNTIME_DIR=" + runtime_dir}, out_,
                                      err_);
}

int loadgen_run::finish(std::chrono::milliseconds timeout) {
    const auto st = proc_->wait(timeout);
    if (!st) return -1;
    std::istringstream in(read_file(out_));
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] != '{') continue;
        nlohmann::json j = nlohmann::json::parse(line);
        if (j.contains("total"))
            total_ = j["total"];
        else
            children_.push_back(std::move(j));
    }
    return *st;
}

std::string loadgen_run::log() const { return read_file(out_) + read_file(err_); }

std::vector<pid_t> loadgen_run::pids() const {
    std::vector<pid_t> out;
    std::istringstream in(read_file(err_));
    std::string word;
    pid_t pid;
    while (in >> word)
        if (word == "pid" && in >> pid) out.push_back(pid);
    return out;
}
std::string promtool_binary() { return "/usr/bin/promtool"; }

}  // namespace plugmon::test
