// Keeps the running remote-write sinks in step with the configuration; see receivers.hpp.
#include "export/remote_write/receivers.hpp"

#include "export/remote_write/from_config.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>

namespace plugmon::agent::remote_write {

receivers::receivers(window_fanout& windows, std::chrono::nanoseconds stop_timeout)
    : windows_(windows), stop_timeout_(stop_timeout) {}

receivers::~receivers() = default;

void receivers::retire(const entry& e) {
    // no window after this reaches it; what it has queued is spooled, then sent or kept
    windows_.remove(e.s, stop_timeout_);
    e.s->stop(stop_timeout_);
    spdlog::info("remote write {}: stopped (removed or changed by a reload)", e.spec.name);
}

std::vector<std::string> receivers::configure(const config& c) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto wanted = [&c](const entry& e) {
        return std::any_of(c.remote_write.begin(), c.remote_write.end(),
                           [&](const remote_write_spec& r) { return r == e.spec; });
    };
    std::vector<entry> kept, retired;
    for (auto& e : entries_) (wanted(e) ? kept : retired).push_back(std::move(e));
    entries_.clear();
    // first, and released, so that a changed receiver's successor can lock the same spool
    for (const auto& e : retired) retire(e);
    retired.clear();
    std::vector<std::string> failed;
    std::vector<entry> next;
    for (const auto& r : c.remote_write) {
        const auto same =
            std::find_if(kept.begin(), kept.end(), [&](const entry& e) { return e.spec == r; });
        if (same != kept.end()) {
            next.push_back(std::move(*same));
            continue;
        }
        try {
            entry e{r, make_sink(c, r)};
            windows_.add(e.s, r.queue_windows);
            if (started_) {
                e.s->start();
                spdlog::info("remote write {}: started by a reload ({})", r.name, r.url);
            }
            next.push_back(std::move(e));
        } catch (const std::exception& ex) {
            spdlog::error("remote write {}: not started: {}", r.name, ex.what());
            failed.push_back(r.name);
        }
    }
    entries_ = std::move(next);
    return failed;
}

void receivers::start() {
    std::lock_guard<std::mutex> lock(mu_);
    started_ = true;
    for (const auto& e : entries_) e.s->start();
}

void receivers::stop(std::chrono::nanoseconds timeout) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : entries_) e.s->stop(timeout);
}

void receivers::render_metrics(std::string& out) const {
    std::vector<std::shared_ptr<const sink>> hold;  // alive while rendered, even if retired
    std::vector<const sink*> list;
    {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& e : entries_) {
            hold.push_back(e.s);
            list.push_back(e.s.get());
        }
    }
    if (!list.empty()) sink::render_metrics(out, list);
}

std::size_t receivers::size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
}

}  // namespace plugmon::agent::remote_write
