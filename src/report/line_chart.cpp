#include <strata/core/error.h>
#include <strata/report/line_chart.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace strata {

namespace {

constexpr Rgb kInk{25, 25, 25};
constexpr Rgb kAxis{90, 90, 90};
constexpr Rgb kGrid{225, 225, 225};
constexpr int kScale = 2;  // text scale: the 5 x 8 font at 2x reads well at these sizes

Rgb tint(Rgb c, double keep) {
  auto mix = [keep](uint8_t v) {
    return static_cast<uint8_t>(std::lround(v * keep + 255.0 * (1 - keep)));
  };
  return Rgb{mix(c.r), mix(c.g), mix(c.b)};
}

void draw_dashed(Image& img, double x0, double y0, double x1, double y1, Rgb c, int thick,
                 double& phase) {
  const double len = std::hypot(x1 - x0, y1 - y0);
  const double on = 9, off = 6;
  double t = 0;
  while (t < len) {
    const double cycle = std::fmod(phase + t, on + off);
    const double step = cycle < on ? on - cycle : on + off - cycle;
    const double t1 = std::min(len, t + step);
    if (cycle < on) {
      img.draw_line(std::lround(x0 + (x1 - x0) * t / len), std::lround(y0 + (y1 - y0) * t / len),
                    std::lround(x0 + (x1 - x0) * t1 / len), std::lround(y0 + (y1 - y0) * t1 / len),
                    c, thick);
    }
    t = t1;
  }
  phase = std::fmod(phase + len, on + off);
}

std::string tick_text(double v, double step) {
  char buf[32];
  const int decimals = step >= 1 ? 0 : std::min(6, static_cast<int>(std::ceil(-std::log10(step))));
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace

Image LineChart::render() const {
  const char* caller = "LineChart::render";
  const auto n = static_cast<int64_t>(x_labels.size());
  STRATA_CHECK(n >= 1, caller, ": no x positions (x_labels is empty)");
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& s : series) {
    STRATA_CHECK(static_cast<int64_t>(s.y.size()) == n, caller, ": series '", s.name, "' has ",
                 s.y.size(), " values for ", n, " x positions");
    STRATA_CHECK(s.std.empty() || s.std.size() == s.y.size(), caller, ": series '", s.name,
                 "' has ", s.std.size(), " std values for ", s.y.size(), " points");
    for (size_t i = 0; i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      const double e = s.std.empty() || !std::isfinite(s.std[i]) ? 0 : s.std[i];
      lo = std::min(lo, s.y[i] - e);
      hi = std::max(hi, s.y[i] + e);
    }
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-12) lo -= 0.5, hi += 0.5;
  const double pad = 0.05 * (hi - lo);
  double ymin = y_min ? *y_min : lo - pad, ymax = y_max ? *y_max : hi + pad;
  STRATA_CHECK(ymin < ymax, caller, ": y_min ", ymin, " is not below y_max ", ymax);

  // Ticks: 1, 2 or 5 times a power of ten, about six of them.
  const double raw = (ymax - ymin) / 6;
  const double p10 = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / p10 < 1.5   ? p10
                      : raw / p10 < 3.5 ? 2 * p10
                      : raw / p10 < 7.5 ? 5 * p10
                                        : 10 * p10;
  std::vector<double> ticks;
  for (double v = std::ceil(ymin / step - 1e-9) * step; v <= ymax + 1e-9 * step; v += step)
    ticks.push_back(std::abs(v) < 1e-12 * step ? 0.0 : v);

  const int64_t th = Image::text_height(kScale);
  int64_t tick_w = 0;
  for (double v : ticks) tick_w = std::max(tick_w, Image::text_width(tick_text(v, step), kScale));
  int64_t label_w = 0;
  for (const auto& l : x_labels) label_w = std::max(label_w, Image::text_width(l, kScale));
  int64_t legend_w = 0;
  for (const auto& s : series) legend_w = std::max(legend_w, Image::text_width(s.name, kScale));
  legend_w += 40;

  const int64_t left = 16 + (y_label.empty() ? 0 : th + 10) + tick_w + 10;
  const int64_t top = 16 + (title.empty() ? 0 : th + 16);
  const int64_t right = 24 + legend_w + 16;
  int64_t plot_w = std::max<int64_t>(width - left - right, 60 * std::min<int64_t>(n, 4));
  const double spacing = n > 1 ? static_cast<double>(plot_w) / static_cast<double>(n - 1) : 0;
  const bool rotate = n > 1 && label_w + 8 > spacing;
  const int64_t xlab_h = rotate ? label_w : th;
  const int64_t bottom = 12 + xlab_h + 10 + (x_label.empty() ? 0 : th + 12);
  const int64_t plot_h = std::max<int64_t>(height - top - bottom, 200);
  const int64_t W = left + plot_w + right, H = top + plot_h + bottom;
  Image img(W, H, Rgb{255, 255, 255});

  const double inset = n > 1 ? 0.0 : plot_w / 2.0;
  auto px = [&](int64_t i) {
    return static_cast<double>(left) + inset + spacing * static_cast<double>(i);
  };
  auto py = [&](double v) {
    const double t = (v - ymin) / (ymax - ymin);
    return static_cast<double>(top) + (1 - t) * static_cast<double>(plot_h);
  };

  // Grid and y ticks.
  for (double v : ticks) {
    const auto y = std::lround(py(v));
    img.draw_line(left, y, left + plot_w, y, kGrid);
    const std::string t = tick_text(v, step);
    img.draw_text(left - 8 - Image::text_width(t, kScale), y - th / 2, t, kInk, kScale);
  }
  // X labels (rotated upwards when they would overlap).
  for (int64_t i = 0; i < n; ++i) {
    const auto x = std::lround(px(i));
    img.draw_line(x, top + plot_h, x, top + plot_h + 5, kAxis);
    if (i > 0 && i < n) img.draw_line(x, top, x, top + plot_h, tint(kGrid, 0.6));
    const std::string& l = x_labels[i];
    if (rotate) {
      img.draw_text_upwards(x - th / 2, top + plot_h + 12, l, kInk, kScale);
    } else {
      img.draw_text(x - Image::text_width(l, kScale) / 2, top + plot_h + 12, l, kInk, kScale);
    }
  }
  // Std bands, then lines, then markers, so no band hides a line.
  for (const auto& s : series) {
    if (s.std.empty()) continue;
    const Rgb band = tint(s.color, 0.22);
    for (int64_t i = 0; i + 1 < n; ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.y[i + 1])) continue;
      const int64_t x0 = std::lround(px(i)), x1 = std::lround(px(i + 1));
      for (int64_t x = x0; x <= x1; ++x) {
        const double t = x1 == x0 ? 0 : static_cast<double>(x - x0) / static_cast<double>(x1 - x0);
        const double m = s.y[i] + t * (s.y[i + 1] - s.y[i]);
        const double e = s.std[i] + t * (s.std[i + 1] - s.std[i]);
        if (e <= 0) continue;
        const auto ya = std::lround(py(std::min(ymax, m + e))),
                   yb = std::lround(py(std::max(ymin, m - e)));
        img.fill_rect(x, ya, 1, yb - ya + 1, band);
      }
    }
  }
  for (const auto& s : series) {
    double phase = 0;
    for (int64_t i = 0; i + 1 < n; ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.y[i + 1])) continue;
      if (s.dashed) {
        draw_dashed(img, px(i), py(s.y[i]), px(i + 1), py(s.y[i + 1]), s.color, 2, phase);
      } else {
        img.draw_line(std::lround(px(i)), std::lround(py(s.y[i])), std::lround(px(i + 1)),
                      std::lround(py(s.y[i + 1])), s.color, 3);
      }
    }
    if (s.markers)
      for (int64_t i = 0; i < n; ++i)
        if (std::isfinite(s.y[i]))
          img.fill_rect(std::lround(px(i)) - 3, std::lround(py(s.y[i])) - 3, 7, 7, s.color);
  }
  // Axes, labels, title, legend.
  img.draw_line(left, top, left, top + plot_h, kAxis, 2);
  img.draw_line(left, top + plot_h, left + plot_w, top + plot_h, kAxis, 2);
  if (!y_label.empty())
    img.draw_text_upwards(16, top + (plot_h - Image::text_width(y_label, kScale)) / 2, y_label,
                      kInk, kScale);
  if (!x_label.empty())
    img.draw_text(left + (plot_w - Image::text_width(x_label, kScale)) / 2, H - 12 - th, x_label,
                  kInk, kScale);
  if (!title.empty()) img.draw_text(16, 16, title, kInk, kScale);
  int64_t ly = top + 4;
  const int64_t lx = left + plot_w + 24;
  for (const auto& s : series) {
    double phase = 0;
    if (s.dashed) {
      draw_dashed(img, lx, ly + th / 2.0, lx + 30, ly + th / 2.0, s.color, 2, phase);
    } else {
      if (!s.std.empty()) img.fill_rect(lx, ly, 31, th, tint(s.color, 0.22));
      img.draw_line(lx, ly + th / 2, lx + 30, ly + th / 2, s.color, 3);
    }
    img.draw_text(lx + 38, ly, s.name, kInk, kScale);
    ly += th + 10;
  }
  return img;
}

}  // namespace strata
