// GET /api/v1/producers: attached and finished producers, their resources and the drain totals.
#include "web/api/json.hpp"
#include "web/api/routes.hpp"

#include <chrono>
#include <memory>
#include <vector>

namespace plugmon::agent::api {

namespace {

nlohmann::json resources_json(const producer& p) {
    const auto& r = p.resources();
    if (!r.sampled.load(std::memory_order_acquire)) return nullptr;
    return {{"rss_bytes", r.rss_bytes.get()},   {"cpu_seconds", double(r.cpu_ns.get()) / 1e9},
            {"open_fds", r.open_fds.get()},     {"threads", r.threads.get()},
            {"read_bytes", r.read_bytes.get()}, {"write_bytes", r.write_bytes.get()},
            {"leak", leak_json(r.leak)}};
}

nlohmann::json producers_json(const std::vector<std::shared_ptr<producer>>& producers) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : producers) {
        const auto& s = p->stats();
        list.push_back({
            {"id", p->id()},
            {"name", p->name()},
            {"resources", resources_json(*p)},
            {"pid", p->pid()},
            {"uid", p->uid()},
            {"state", p->gone() && p->state() == producer_state::attached ? "closing"
                                                                          : to_string(p->state())},
            {"drained", s.drained.get()},
            {"dropped_full", s.full.get()},
            {"torn", s.torn.get()},
            {"invalid", s.invalid.get()},
            {"resource_samples", s.resource_samples.get()},
            {"consumed_at_attach", s.consumed_at_attach},
            {"attached_at_unix",
             std::chrono::duration_cast<std::chrono::seconds>(p->attached_at().time_since_epoch())
                 .count()},
        });
    }
    return list;
}

nlohmann::json totals_json(const drain& d) {
    const auto& t = d.totals();
    return {
        {"drained", t.drained.get()},
        {"dropped", {{"full", t.full.get()}, {"torn", t.torn.get()}, {"invalid", t.invalid.get()}}},
        {"folded", t.folded.get()},
        {"windows", t.windows.get()},
        {"producers_registered", t.producers_registered.get()},
        {"producers_finished", t.producers_finished.get()},
        {"producers_quarantined", t.producers_quarantined.get()},
        {"backlog", t.backlog.load()},
        {"ring_used_ratio", double(t.ring_used_ppm.load()) / 1e6}};
}

}  // namespace

void add_producers_routes(router& r, const api_context& ctx) {
    r.add({"GET", "/api/v1/producers", "producers", scope::read,
           [&ctx](const http_request&, const route_params&) {
               return json_response({{"producers", producers_json(ctx.drainer.producers())},
                                     {"finished", producers_json(ctx.drainer.finished())},
                                     {"totals", totals_json(ctx.drainer)}});
           }});
}

}  // namespace plugmon::agent::api
