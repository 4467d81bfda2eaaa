// Leak detection: the sample window, its thinning and the least-squares fit.
#include "aggregate/leak.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace plugmon::agent {

leak_detector::leak_detector(std::size_t max_samples) : max_samples_(max_samples) {
    if (max_samples_ < 3) {
        throw std::invalid_argument("leak_detector: max_samples must be at least 3");
    }
}

void leak_detector::add(double t_seconds, double value) {
    if (!std::isfinite(t_seconds) || !std::isfinite(value)) return;
    if (!samples_.empty() && t_seconds <= samples_.back().t) return;
    if (samples_.size() >= max_samples_) thin();
    samples_.push_back({t_seconds, value});
}

void leak_detector::thin() {
    // In place: indices 0, 2, 4, ... move down to 0, 1, 2, ...; the newest (odd-indexed when the
    // count is even) is kept too, so the span of the window survives thinning.
    const std::size_t n = samples_.size();
    std::size_t kept = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (i % 2 == 0 || i == n - 1) samples_[kept++] = samples_[i];
    }
    samples_.resize(kept);
}

leak_verdict leak_detector::evaluate(const leak_settings& s) {
    if (s.window <= std::chrono::nanoseconds::zero()) {
        throw std::invalid_argument("leak_settings: window must be positive");
    }
    const double window_seconds = std::chrono::duration<double>(s.window).count();

    leak_verdict v;
    if (samples_.empty()) return v;
    const double oldest_allowed = samples_.back().t - window_seconds;
    while (samples_.front().t < oldest_allowed) samples_.pop_front();

    const std::size_t n = samples_.size();
    v.samples = n;
    v.enough_data = n >= min_samples &&
                    samples_.back().t - samples_.front().t >= min_span_fraction * window_seconds;

    // Centre on the first sample before anything is summed: with epoch-sized times and GiB-sized
    // values, the raw sums of squares would lose the small differences the fit depends on
    // (https://en.wikipedia.org/wiki/Algorithms_for_calculating_variance).
    const double t0 = samples_.front().t;
    const double y0 = samples_.front().value;
    double sum_x = 0;
    double sum_y = 0;
    for (const sample& p : samples_) {
        sum_x += p.t - t0;
        sum_y += p.value - y0;
    }
    const double mean_x = sum_x / static_cast<double>(n);
    const double mean_y = sum_y / static_cast<double>(n);

    double sxx = 0;
    double sxy = 0;
    double syy = 0;
    for (const sample& p : samples_) {
        const double dx = (p.t - t0) - mean_x;
        const double dy = (p.value - y0) - mean_y;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    // One sample (sxx == 0) or a flat line (syy == 0): no slope, nothing explained.
    if (sxx == 0 || syy == 0) return v;

    const double slope = sxy / sxx;
    // The residuals directly rather than syy - slope * sxy, which cancels when the fit is close.
    double ss_res = 0;
    for (const sample& p : samples_) {
        const double r = ((p.value - y0) - mean_y) - slope * ((p.t - t0) - mean_x);
        ss_res += r * r;
    }
    v.slope_bytes_per_second = slope;
    v.r2 = std::clamp(1.0 - ss_res / syy, 0.0, 1.0);
    v.growth_bytes = slope * window_seconds;
    v.suspected = v.enough_data && slope > 0 &&
                  v.growth_bytes >= static_cast<double>(s.min_growth) && v.r2 >= s.min_r2;
    return v;
}

}  // namespace plugmon::agent
