// The metrics-source seam: each component renders its own metric families; /metrics only frames
// them (export/prometheus). Registering a source is how a new component shows up in /metrics.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace plugmon::agent {

/// Receives the exposition in consecutive pieces.
using metrics_sink = std::function<void(std::string_view)>;

/// The text being rendered and where it goes: all of it stays in `out` when there is no sink;
/// with a sink, flush_if_full() hands `out` on whenever it holds a chunk, so a large body (31 MiB
/// at 10 k series) is never held whole.
class metrics_text {
public:
    explicit metrics_text(std::string& text, const metrics_sink* sink = nullptr,
                          std::size_t chunk = 0)
        : out(text), sink_(sink), chunk_(chunk) {}
    std::string& out;
    /// Call between complete lines: hands the text on when a chunk has accumulated.
    void flush_if_full() {
        if (sink_ != nullptr && out.size() >= chunk_) flush();
    }
    /// Hands on whatever is there (at the end of the body).
    void flush() {
        if (sink_ != nullptr && !out.empty()) {
            (*sink_)(out);
            out.clear();
        }
    }
    const metrics_sink* sink() const { return sink_; }
    std::size_t chunk() const { return chunk_; }

private:
    const metrics_sink* sink_;
    std::size_t chunk_;
};

/// A component's own metric families, written with common/exposition.hpp.
///
/// render() may be called from any thread, concurrently with the component's work, and must not
/// block for long. It appends complete families (HELP, TYPE and samples) to `t.out`, calling
/// t.flush_if_full() between lines when it writes many.
class metrics_source {
public:
    virtual ~metrics_source() = default;
    virtual void render(metrics_text& t) const = 0;
    /// Upper bound of the bytes render() appends, when it is cheap to know (0: small, or only
    /// known while rendering). A body rendered whole is reserved for the sum of the hints first,
    /// so that no source appended after a large one makes the body grow (a copy of all of it).
    virtual std::size_t size_hint() const { return 0; }
};

/// A source made of a function (for components that keep their own render member).
class metrics_function final : public metrics_source {
public:
    explicit metrics_function(std::function<void(std::string&)> f) : f_(std::move(f)) {}
    void render(metrics_text& t) const override {
        f_(t.out);
        t.flush_if_full();
    }

private:
    std::function<void(std::string&)> f_;
};

/// The ordered list of sources /metrics renders. Filled while the agent is wired, read-only after.
class metrics_registry {
public:
    void add(std::shared_ptr<const metrics_source> s) { sources_.push_back(std::move(s)); }
    void add(std::function<void(std::string&)> f) {
        sources_.push_back(std::make_shared<metrics_function>(std::move(f)));
    }
    const std::vector<std::shared_ptr<const metrics_source>>& sources() const { return sources_; }

private:
    std::vector<std::shared_ptr<const metrics_source>> sources_;
};

}  // namespace plugmon::agent
