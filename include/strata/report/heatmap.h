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
};

}  // namespace strata
