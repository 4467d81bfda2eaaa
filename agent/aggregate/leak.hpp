// Leak detection: judges whether a sampled quantity (a plugin's live heap bytes, a process's RSS)
// grows steadily over a window, by a least-squares line through the samples.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>

namespace plugmon::agent {

/// What counts as a leak. All three must hold for a verdict of "suspected".
struct leak_settings {
    /// How far back from the newest sample to look. Must be positive.
    std::chrono::nanoseconds window;
    /// The least growth, in bytes, of the fitted line over the whole window (slope * window).
    std::uint64_t min_growth;
    /// The least coefficient of determination (R²) of the fit: how well a straight line explains
    /// the samples. A step, a sawtooth or noise fits a line badly; a steady leak fits it well.
    double min_r2;
};

/// The result of one evaluation. The fit figures are filled in whenever there are samples in the
/// window, even when there are too few for a judgement, so that they can be shown.
struct leak_verdict {
    /// enough_data && slope > 0 && growth_bytes >= min_growth && r2 >= min_r2.
    bool suspected = false;
    /// Slope of the least-squares line; 0 with fewer than two samples or a flat line.
    double slope_bytes_per_second = 0;
    /// R² = 1 - SS_res / SS_tot in [0, 1]; 0 when SS_tot == 0 (all samples equal).
    double r2 = 0;
    /// slope_bytes_per_second * window in seconds (negative when shrinking).
    double growth_bytes = 0;
    /// Samples within [newest - window, newest].
    std::size_t samples = 0;
    /// At least min_samples samples spanning at least min_span_fraction of the window.
    bool enough_data = false;
};

/// A window of (time, value) samples and a linear-regression judgement of steady growth.
///
/// Samples arrive about once a second. Memory is bounded: at most max_samples are held; when full,
/// every other sample is dropped (the first and the newest are always kept), so old samples thin
/// out while the span of the window is preserved. Samples older than the window are dropped by
/// evaluate().
///
/// Thread safety: none; one thread at a time (the agent keeps one per plugin or process, on the
/// thread that samples it). add() and evaluate() do not block, allocate only as std::deque grows,
/// and do not throw except std::bad_alloc; evaluate() throws std::invalid_argument for a
/// non-positive window.
class leak_detector {
public:
    /// Fewer samples than this in the window is not enough data.
    static constexpr std::size_t min_samples = 10;
    /// Samples spanning less than this fraction of the window is not enough data.
    static constexpr double min_span_fraction = 0.8;

    /// Throws std::invalid_argument when max_samples < 3 (thinning needs room to drop one).
    explicit leak_detector(std::size_t max_samples = 4096);

    /// Adds a sample of `value` taken at `t_seconds` (steady clock, in seconds). Times must be
    /// strictly increasing: a sample at or before the newest one is ignored, as is one with a
    /// non-finite time or value. When max_samples are held, thins them first (see the class).
    void add(double t_seconds, double value);

    /// Drops samples older than newest - window, fits a line to the rest and judges it.
    /// Throws std::invalid_argument when s.window is not positive.
    leak_verdict evaluate(const leak_settings& s);

    /// Forgets every sample; the next add() accepts any time.
    void clear() noexcept { samples_.clear(); }

    /// The number of samples held (at most max_samples).
    std::size_t size() const noexcept { return samples_.size(); }

private:
    struct sample {
        double t;
        double value;
    };

    /// Keeps even-indexed samples and the newest one.
    void thin();

    std::size_t max_samples_;
    std::deque<sample> samples_;
};

}  // namespace plugmon::agent
