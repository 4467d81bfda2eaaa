// plugmonctl: talks to a running agent over its HTTP API (status, top).
#include "top.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

namespace beast = boost::beast;
namespace asio = boost::asio;

namespace {

/// GET http://<agent>/<target>; throws std::runtime_error naming the agent on failure.
std::string http_get(const std::string& agent, const std::string& target) {
    const auto colon = agent.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("--agent: expected host:port, got \"" + agent + "\"");
    std::string host = agent.substr(0, colon);
    if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
    const std::string port = agent.substr(colon + 1);
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(5));
    stream.connect(resolver.resolve(host, port));
    beast::http::request<beast::http::empty_body> req{beast::http::verb::get, target, 11};
    req.set(beast::http::field::host, host);
    beast::http::write(stream, req);
    beast::flat_buffer buf;
    beast::http::response<beast::http::string_body> res;
    beast::http::read(stream, buf, res);
    beast::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    if (res.result_int() >= 400 && res.result_int() != 503)
        throw std::runtime_error(target + ": HTTP " + std::to_string(res.result_int()));
    return res.body();
}

int status(const std::string& agent) {
    const auto ready = nlohmann::json::parse(http_get(agent, "/readyz"));
    const auto prods = nlohmann::json::parse(http_get(agent, "/api/v1/producers"));
    const auto& t = prods["totals"];
    std::printf("agent %s  version %s  %s\n", agent.c_str(), ready.value("version", "?").c_str(),
                ready.value("ready", false) ? "ready" : "NOT READY");
    std::printf("socket %s  store %s\n", ready.value("socket", "").c_str(), ready.value("store", "").c_str());
    std::printf("drained %llu  dropped: full %llu  torn %llu  invalid %llu  (folded over budget %llu)\n",
                t["drained"].get<unsigned long long>(), t["dropped"]["full"].get<unsigned long long>(),
                t["dropped"]["torn"].get<unsigned long long>(), t["dropped"]["invalid"].get<unsigned long long>(),
                t.value("folded", 0ull));
    std::printf("%8s %8s %-12s %14s %12s %8s %8s\n", "PID", "UID", "STATE", "DRAINED", "FULL", "TORN", "INVALID");
    for (const auto& p : prods["producers"])
        std::printf("%8d %8u %-12s %14llu %12llu %8llu %8llu\n", p["pid"].get<int>(), p["uid"].get<unsigned>(),
                    p["state"].get<std::string>().c_str(), p["drained"].get<unsigned long long>(),
                    p["dropped_full"].get<unsigned long long>(), p["torn"].get<unsigned long long>(),
                    p["invalid"].get<unsigned long long>());
    return ready.value("ready", false) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"plugmonctl: inspect a running plugmon agent"};
    app.set_version_flag("--version", PLUGMON_VERSION);
    std::string agent = "127.0.0.1:9464";
    app.add_option("--agent", agent, "The agent's HTTP listener (host:port)")->capture_default_str();
    auto* st = app.add_subcommand("status", "Health, producers and drop counters");
    auto* top = app.add_subcommand(
        "top", "Live per-plugin view: calls/s, errors, p99, query time, CPU, live memory");
    double interval = 1.0;
    int iterations = 1;
    top->add_option("--interval", interval, "Seconds between refreshes")->capture_default_str();
    auto* iterations_opt = top->add_option(
        "--iterations", iterations,
        "Print this many frames as plain text, then exit (default when stdout is not a tty: 1)");
    app.require_subcommand(1);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    if (top->parsed()) {
        // The upper bound keeps every sleep and poll timeout far from overflow.
        if (!(interval > 0 && interval <= 86400)) {
            std::fprintf(stderr,
                         "plugmonctl: --interval must be a number of seconds in (0, 86400], got %g\n",
                         interval);
            return 2;
        }
        if (iterations_opt->count() > 0 && iterations < 1) {
            std::fprintf(stderr, "plugmonctl: --iterations must be at least 1, got %d\n", iterations);
            return 2;
        }
    }
    try {
        if (st->parsed()) return status(agent);
        if (top->parsed()) {
            plugmon::ctl::top_options opts;
            opts.agent = agent;
            opts.interval_s = interval;
            const plugmon::ctl::top_fetch fetch = [&agent](const std::string& target) {
                return http_get(agent, target);
            };
            if (iterations_opt->count() == 0 && ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO))
                return plugmon::ctl::run_top_interactive(opts, fetch);
            opts.iterations = iterations_opt->count() > 0 ? iterations : 1;
            return plugmon::ctl::run_top_batch(opts, fetch, std::cout);
        }
    } catch (const plugmon::ctl::top_terminal_error& e) {
        std::fprintf(stderr, "plugmonctl: top: the terminal: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "plugmonctl: cannot reach the agent at %s: %s\n", agent.c_str(), e.what());
        return 1;
    }
    return 0;
}
