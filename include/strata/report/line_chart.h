// Line charts: one or more series of y values over shared, labelled x positions (layers), with
// optional ±std bands, dashed lines, a legend, axis labels and a title. The probe accuracy curve
// (accuracy vs layer, with the control task and the majority baseline) is one.
//
//   strata::LineChart c;
//   c.x_labels = {"embed", "layers.0", "layers.1"};
//   c.title = "linear probe: next token starts a word";
//   c.y_label = "accuracy";
//   c.y_min = 0; c.y_max = 1;
//   c.series.push_back({"test", {0.61, 0.84, 0.90}, {0.01, 0.02, 0.01}, strata::Rgb{31, 119,
//   180}}); c.render().save_png("curve.png");
#pragma once

#include <strata/report/image.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace strata {

/// One line of a LineChart.
struct LineSeries {
  std::string name;         ///< shown in the legend
  std::vector<double> y;    ///< one value per x position (NaN: a gap)
  std::vector<double> std;  ///< optional, same length: a shaded band y ± std
  Rgb color{31, 119, 180};  ///< line colour
  bool dashed = false;      ///< dashed line (baselines)
  bool markers = true;      ///< a small square at each point
};

/// A line chart; see the file comment.
struct LineChart {
  std::vector<std::string> x_labels;  ///< one per x position (drawn rotated when long)
  std::vector<LineSeries> series;
  std::string title, x_label, y_label;
  std::optional<double> y_min, y_max;  ///< axis range (default: from the data, padded)
  int64_t width = 900, height = 520;   ///< image size in pixels (grown to fit labels)

  /// Draws the chart. Errors (strata::Error): no x positions, a series whose length (or std's
  /// length) differs from the number of x labels, y_min >= y_max.
  Image render() const;
};

}  // namespace strata
