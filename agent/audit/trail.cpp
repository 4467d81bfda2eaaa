// The audit trail: entries stamped, cleaned, logged as one structured line and kept in a ring.
#include "audit/trail.hpp"

#include <algorithm>
#include <iterator>

#include "common/rfc3339.hpp"
#include "log/formatter.hpp"
#include "log/log.hpp"
#include "log/redact.hpp"

namespace plugmon::agent::audit {

namespace {

constexpr std::size_t max_field = 200;
constexpr std::size_t max_detail = 500;

/// `s` with secrets masked (before the cut, which could split one), cut to at most `limit` bytes
/// between two characters, control characters and invalid UTF-8 as '?' (an entry must stay valid
/// JSON), "-" when empty.
std::string clean(std::string_view s, std::size_t limit) {
    const std::string masked = log::redact(s);
    std::string out;
    for (std::string_view rest = masked; !rest.empty();) {
        const std::size_t n = log::utf8_length(rest);
        const auto c = static_cast<unsigned char>(rest[0]);
        const bool unprintable = n == 0 || c < ' ' || c == 0x7f;
        if (out.size() + (unprintable ? 1 : n) > limit) break;
        if (unprintable)
            out += '?';
        else
            out.append(rest.substr(0, n));
        rest.remove_prefix(unprintable ? 1 : n);
    }
    return out.empty() ? "-" : out;
}

std::string joined(const std::vector<std::string>& keys) {
    std::string out;
    for (const auto& k : keys) out += (out.empty() ? "" : ",") + k;
    return out.empty() ? "-" : out;
}

}  // namespace

nlohmann::json to_json(const entry& e) {
    return {{"at", format_rfc3339(e.at)}, {"seq", e.seq},       {"actor", e.actor},
            {"client", e.client},         {"action", e.action}, {"target", e.target},
            {"status", e.status},         {"detail", e.detail}};
}

std::string reload_detail(const std::vector<std::string>& applied,
                          const std::vector<std::string>& restart_required) {
    return "applied=" + joined(applied) + " restart_required=" + joined(restart_required);
}

std::string refusal_detail(std::string_view why) {
    return "refused: " + std::string(why);  // record() cuts it to max_detail
}

trail::trail(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}

void trail::record(entry e) noexcept {
    try {
        if (e.at == std::chrono::system_clock::time_point{})
            e.at = std::chrono::system_clock::now();
        e.actor = clean(e.actor, max_field);
        e.client = clean(e.client, max_field);
        e.action = clean(e.action, max_field);
        e.target = clean(e.target, max_field);
        e.detail = clean(e.detail, max_detail);
        std::size_t dropped_at = 0;  // the queue's bound when an entry was dropped, else 0
        {
            const std::lock_guard lock(mu_);
            e.seq = next_seq_++;
            entries_.push_back(e);
            if (entries_.size() > capacity_) entries_.pop_front();
            if (pending_max_ != 0) {
                if (pending_.size() >= pending_max_) {
                    pending_.pop_front();
                    ++pending_dropped_;
                    dropped_at = pending_max_;
                }
                pending_.push_back(e);
            }
        }
        log::info("audit", e.action + " " + std::to_string(e.status),
                  {{"seq", e.seq},
                   {"at", format_rfc3339(e.at)},
                   {"actor", e.actor},
                   {"client", e.client},
                   {"action", e.action},
                   {"target", e.target},
                   {"status", e.status},
                   {"detail", e.detail}});
        if (dropped_at != 0)
            log::limited(spdlog::level::err, "audit",
                         "the store took no audit entries for too long; the oldest queued entry "
                         "will not reach plugmon.audit (its log line stays)",
                         {{"pending_max", dropped_at}});
    } catch (...) {
        // out of memory: the entry is lost rather than the request
    }
}

std::vector<entry> trail::recent(std::size_t limit) const {
    const std::lock_guard lock(mu_);
    const std::size_t n = std::min(limit, entries_.size());
    return {entries_.rbegin(), entries_.rbegin() + std::ptrdiff_t(n)};
}

void trail::keep_pending(std::size_t max) {
    const std::lock_guard lock(mu_);
    pending_max_ = std::max<std::size_t>(max, 1);
}

std::vector<entry> trail::take_pending() {
    std::deque<entry> taken;
    {
        const std::lock_guard lock(mu_);
        taken.swap(pending_);
    }
    return {std::make_move_iterator(taken.begin()), std::make_move_iterator(taken.end())};
}

std::uint64_t trail::pending_dropped() const {
    const std::lock_guard lock(mu_);
    return pending_dropped_;
}

std::uint64_t trail::recorded() const {
    const std::lock_guard lock(mu_);
    return next_seq_ - 1;
}

}  // namespace plugmon::agent::audit
