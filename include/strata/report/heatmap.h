// Heatmaps: a rows × columns grid of coloured cells, each optionally labelled with a short text,
// with row and column labels, a title and a colour bar. The logit-lens picture (layers ×
// positions, each cell showing its top-1 token, coloured by probability) is one; relevance maps
// and probe matrices are others.
//
//   strata::Heatmap h(values);             // values: rows × cols, row-major
//   h.cell_text = texts;                   // optional, same shape
//   h.row_labels = {"tok_embeddings", "layers.0", ...};
//   h.col_labels = {"Once", " upon", ...};
//   h.title = "logit lens: top-1 token, coloured by probability";
//   h.render().save_png("lens.png");
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <strata/report/image.h>

namespace strata {

/// Colour maps for values mapped to [0, 1].
enum class Colormap {
  Viridis,   ///< perceptually uniform, dark blue (low) to yellow (high)
  Diverging  ///< blue (low) - white (middle) - red (high), as relevance maps are usually shown
};

/// The colour of `t` in [0, 1] (clamped; NaN is drawn grey).
Rgb colormap(Colormap map, double t);

/// A rectangle in pixels: top-left corner (x, y) and size w × h.
struct Rect {
  int64_t x = 0, y = 0, w = 0, h = 0;
};

/// Where Heatmap::render() puts things (from Heatmap::layout()), for callers that annotate the
/// picture and for tests.
struct HeatmapLayout {
  int64_t width = 0, height = 0;            ///< the whole image
  int64_t rows = 0, cols = 0;               ///< the grid's shape
  int64_t cell_width = 0, cell_height = 0;  ///< one cell's fill; 1-pixel grid lines lie between
  Rect grid;                                ///< all cells with the grid lines around them
  Rect colorbar;                            ///< the colour ramp, vmax at the top
  double vmin = 0, vmax = 1;                ///< the colour range used (NaN fields resolved)
  /// The fill of cell (row, col), grid lines excluded; indices out of range throw strata::Error.
  Rect cell(int64_t row, int64_t col) const;
};

/// A labelled heatmap; fill the fields, then render().
struct Heatmap {
  /// `values` holds rows × cols numbers, row-major; NaN cells are drawn grey.
  Heatmap(std::vector<double> values, int64_t rows, int64_t cols);

  std::vector<double> values;
  int64_t rows = 0, cols = 0;
  std::vector<std::string> cell_text;   ///< empty, or rows × cols short texts
  std::vector<std::string> row_labels;  ///< empty, or one per row (drawn on the left)
  std::vector<std::string> col_labels;  ///< empty, or one per column (drawn on top)
  std::string title;
  std::string colorbar_label;           ///< e.g. "p(top-1)"
  Colormap map = Colormap::Viridis;
  double vmin = NAN, vmax = NAN;        ///< colour range; NaN: the data's min / max
  int text_scale = 1;                   ///< glyph scale for cell text and labels
  int64_t min_cell_width = 0;           ///< cells widen to fit their text; at least this wide
  int64_t cell_height = 0;              ///< 0: fit the text

  /// Draws the heatmap; errors (wrong sizes of values/labels/texts) throw strata::Error.
  Image render() const;
  /// The geometry render() uses (same checks and errors as render()).
  HeatmapLayout layout() const;
  /// The fill colour of `value` under this heatmap's map and colour range (vmin, vmax of
  /// layout()): `colormap(map, (value - vmin) / (vmax - vmin))`, mid-range when vmin == vmax.
  Rgb color_of(double value) const;
};

}  // namespace strata
