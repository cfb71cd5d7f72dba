// plot.h — a small raster x-y plot for the programs' figures (e.g. zeroq_main's mixed-precision
// frontier), drawn into an ImageU8 for save_png: a frame, "nice" ticks (1 / 2 / 5 x 10^k on a linear
// axis, decades on a log axis) with labels, axis labels and a title in a built-in 5x7 bitmap font
// (upper-case letters, digits and a few signs; lower-case is drawn as upper-case, anything else as a
// blank), each series as a line or as markers, and a legend.
// Rules: non-finite points (and points <= 0 on a log axis) are skipped; the axes span every drawn
// point of every series (a flat or empty span is widened so the plot never divides by zero).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/image.h"

namespace dfq {

struct PlotSeries {
  enum class Style { Line, Dots, Ring, Cross };
  std::vector<double> x, y;
  std::array<uint8_t, 3> rgb{0, 0, 0};
  Style style = Style::Line;
  int size = 2;       // line thickness, or marker radius in pixels
  std::string label;  // in the legend (empty: not listed)
};

struct PlotSpec {
  int width = 960, height = 600;
  std::string title, xlabel, ylabel;
  bool log_y = false;
  std::vector<PlotSeries> series;
};

ImageU8 render_plot(const PlotSpec& spec);

// Draws text with its top-left corner at (x, y), each font pixel a scale x scale block (clipped to
// the image). Returns the width drawn in pixels.
int draw_text(ImageU8& img, int x, int y, const std::string& text, std::array<uint8_t, 3> rgb, int scale = 2);
int text_width(const std::string& text, int scale = 2);

}  // namespace dfq
