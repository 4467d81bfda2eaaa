// Helpers for tests that run real processes: spawn/kill/wait, a temporary directory, a minimal
// HTTP client, a Prometheus text parser, and a running plugmon-agent.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <sys/types.h>

namespace plugmon::test {

/// A fresh directory under $TMPDIR, removed with its contents at destruction.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

/// A child process running `argv`, with stdout and stderr sent to files.
class process {
public:
    process(std::vector<std::string> argv, const std::vector<std::string>& extra_env,
            const std::string& stdout_path, const std::string& stderr_path,
            const std::string& stdin_path = "/dev/null");
    ~process();
    process(const process&) = delete;
    process& operator=(const process&) = delete;
    pid_t pid() const { return pid_; }
    void signal(int sig) const;
    /// Waits for exit; returns the wait status, or nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    bool running();

private:
    pid_t pid_ = -1;
    bool reaped_ = false;
    int status_ = 0;
};

std::string read_file(const std::string& path);
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout);

/// A loopback TCP port that nothing listens on at the time of the call (bound, then released): a
/// receiver or database address that refuses connections, or a port to start a server on.
/// Throws std::runtime_error when no port can be bound.
int unused_loopback_port();

/// GET http://127.0.0.1:port/target; returns the body, or nullopt when unreachable or not 2xx.
std::optional<std::string> http_get(int port, const std::string& target, int* status = nullptr);
/// POST http://127.0.0.1:port/target with no body (and the bearer token, if any); the status and
/// the body whatever the status, or nullopt when unreachable.
std::optional<std::pair<int, std::string>> http_post(int port, const std::string& target,
                                                     const std::string& bearer = "");

/// Parsed Prometheus text: one entry per sample line ("name{labels}" → value).
struct metrics {
    std::map<std::string, double> samples;
    static metrics parse(const std::string& text);
    /// Sum over samples of `name` whose labels contain every `k="v"` in `match`.
    double sum(const std::string& name, const std::map<std::string, std::string>& match = {}) const;
};

/// plugmon-agent on 127.0.0.1:<ephemeral>, with its runtime directory and logs in `dir`.
class agent {
public:
    agent(const std::string& runtime_dir, const std::string& log_path,
          std::vector<std::string> extra_args = {});
    int port() const { return port_; }
    process& proc() { return *proc_; }
    metrics scrape() const;
    std::string metrics_text() const;
    /// The JSON of /api/v1/producers.
    std::string producers_json() const;
    /// SIGTERM and wait; returns the exit status.
    int stop();

private:
    std::unique_ptr<process> proc_;
    int port_ = 0;
    std::string log_;
};

/// Runs `promtool check metrics` on `text`; returns its exit status and sets `output`.
int promtool_check_metrics(const std::string& dir, const std::string& text, std::string& output);

std::string agent_binary();
std::string loadgen_binary();

/// One plugmon-loadgen run with --json; the per-child lines are parsed after it exits.
class loadgen_run {
public:
    loadgen_run(const temp_dir& dir, const std::string& name, const std::string& runtime_dir,
                std::vector<std::string> args);
    process& proc() { return *proc_; }
    /// Waits for exit and parses the per-child lines (the "total" line is kept apart). Returns
    /// the wait status, or -1 on timeout.
    int finish(std::chrono::milliseconds timeout = std::chrono::seconds(120));
    const std::vector<nlohmann::json>& children() const { return children_; }
    const nlohmann::json& total() const { return total_; }
    std::string log() const;
    /// Child pids, from --print-pids on stderr.
    std::vector<pid_t> pids() const;

private:
    std::string out_, err_;
    std::unique_ptr<process> proc_;
    std::vector<nlohmann::json> children_;
    nlohmann::json total_;
};
std::string promtool_binary();

}  // namespace plugmon::test
