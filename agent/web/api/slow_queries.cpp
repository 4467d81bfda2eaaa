// GET /api/v1/slow-queries[?plugin=P&limit=N]: recent slow-query samples and the top statements.
#include "web/api/json.hpp"
#include "web/api/routes.hpp"

namespace plugmon::agent::api {

namespace {

nlohmann::json sample_json(const slow_sample& s) {
    nlohmann::json j = {{"time", unix_seconds(s.at)},
                        {"plugin", s.plugin},
                        {"op", s.op},
                        {"table", s.table},
                        {"tenant", s.tenant},
                        {"duration_seconds", seconds(s.duration_ns)},
                        {"rows", s.rows},
                        {"error", s.error},
                        {"pid", s.pid}};
    j["statement"] = s.statement.empty() ? nlohmann::json(nullptr) : nlohmann::json(s.statement);
    j["fingerprint"] = s.statement.empty() ? nlohmann::json(nullptr)
                                           : nlohmann::json(fingerprint_hex(s.fingerprint));
    return j;
}

nlohmann::json top_json(const api_context& ctx, const std::string* only) {
    nlohmann::json top = nlohmann::json::array();
    for (const auto& st : ctx.statements->top(only, ctx.top_statements)) {
        const std::uint64_t calls = st->calls.get();
        top.push_back({{"plugin", st->plugin},
                       {"fingerprint", fingerprint_hex(st->fingerprint)},
                       {"statement", st->text},
                       {"calls", calls},
                       {"errors", st->errors.get()},
                       {"rows", st->rows.get()},
                       {"slow", st->slow.get()},
                       {"total_seconds", seconds(st->total_ns.get())},
                       {"mean_seconds", calls ? seconds(st->total_ns.get()) / double(calls) : 0.0},
                       {"max_seconds", seconds(st->max_ns.get())}});
    }
    return top;
}

http_response slow_queries(const api_context& ctx, const http_request& req) {
    if (ctx.statements == nullptr)
        return error_response(404, "slow queries are not kept by this agent");
    const auto plugin = query_param(req.target, "plugin");
    std::size_t limit = 100;
    if (auto bad = read_limit(req.target, 100000, limit)) return *bad;
    const std::string* only = plugin ? &*plugin : nullptr;
    nlohmann::json samples = nlohmann::json::array();
    for (const slow_sample& s : ctx.statements->recent(only, limit))
        samples.push_back(sample_json(s));
    return json_response({{"slow_total", ctx.statements->slow_total()},
                          {"samples", samples},
                          {"top", top_json(ctx, only)}});
}

}  // namespace

void add_slow_queries_routes(router& r, const api_context& ctx) {
    r.add(
        {"GET", "/api/v1/slow-queries", "slow_queries", scope::read,
         [&ctx](const http_request& req, const route_params&) { return slow_queries(ctx, req); }});
}

}  // namespace plugmon::agent::api
