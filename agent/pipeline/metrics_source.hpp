// The metrics-source seam: each component renders its own metric families; /metrics only frames
// them (export/prometheus). Registering a source is how a new component shows up in /metrics.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace plugmon::agent {

/// A component's own metric families, written with common/exposition.hpp.
///
/// render() may be called from any thread, concurrently with the component's work, and must not
/// block for long. It appends complete families (HELP, TYPE and samples) to `out`; the framing
/// may hand `out` to the scraper after any call, so one family must not span two sources.
class metrics_source {
public:
    virtual ~metrics_source() = default;
    virtual void render(std::string& out) const = 0;
};

/// A source made of a function (for components that keep their own render member).
class metrics_function final : public metrics_source {
public:
    explicit metrics_function(std::function<void(std::string&)> f) : f_(std::move(f)) {}
    void render(std::string& out) const override { f_(out); }

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
