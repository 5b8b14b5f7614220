using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace MeshAI.Agent.Ocr;

/// <summary>What preprocessing did to an image (reported in the job log).</summary>
public sealed record PreprocessReport(int Width, int Height, double SkewDegrees, bool Denoised, bool Resized);

/// <summary>
/// Image cleanup before OCR (ImageSharp): bound the size, grayscale, light Gaussian denoise, and deskew by the angle whose
/// horizontal projection profile is sharpest (text lines then fall into few rows).
/// </summary>
public static class ImagePreprocessor
{
    /// <summary>Default bound on the longer side.</summary>
    public const int DefaultMaxSidePx = 3000;

    /// <summary>Largest skew searched either way, in degrees.</summary>
    public const double MaxSkewDegrees = 10;

    /// <summary>Decodes, cleans and re-encodes the image as PNG for the OCR engine.</summary>
    public static (byte[] Png, PreprocessReport Report) Process(byte[] imageBytes, bool deskew, bool denoise, int maxSidePx)
    {
        ArgumentNullException.ThrowIfNull(imageBytes);
        using var image = Image.Load<Rgba32>(imageBytes);
        var max = maxSidePx > 0 ? maxSidePx : DefaultMaxSidePx;
        var resized = false;
        if (Math.Max(image.Width, image.Height) > max)
        {
            var scale = (double)max / Math.Max(image.Width, image.Height);
            image.Mutate(x => x.Resize(Math.Max(1, (int)(image.Width * scale)), Math.Max(1, (int)(image.Height * scale))));
            resized = true;
        }

        image.Mutate(x => x.BackgroundColor(Color.White).Grayscale());
        if (denoise)
        {
            image.Mutate(x => x.GaussianBlur(0.6f));
        }

        double skew = 0;
        if (deskew)
        {
            skew = EstimateSkewDegrees(image);
            if (Math.Abs(skew) >= 0.25)
            {
                image.Mutate(x => x.Rotate((float)-skew).BackgroundColor(Color.White));
            }
        }

        using var output = new MemoryStream();
        image.SaveAsPng(output);
        return (output.ToArray(), new PreprocessReport(image.Width, image.Height, skew, denoise, resized));
    }

    /// <summary>
    /// The text's rotation in degrees (ImageSharp's sense: rotating the image by the negative of this levels it),
    /// searched in ±<see cref="MaxSkewDegrees"/> on a downscaled binarised copy.
    /// </summary>
    public static double EstimateSkewDegrees(Image<Rgba32> image)
    {
        ArgumentNullException.ThrowIfNull(image);
        using var small = image.Clone(x =>
        {
            var scale = Math.Min(1.0, 800.0 / Math.Max(image.Width, image.Height));
            x.Resize(Math.Max(1, (int)(image.Width * scale)), Math.Max(1, (int)(image.Height * scale))).Grayscale();
        });
        var dark = new List<(int X, int Y)>();
        small.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    if (row[x].A > 128 && row[x].R < 128)
                    {
                        dark.Add((x, y));
                    }
                }
            }
        });
        if (dark.Count < 20)
        {
            return 0;
        }

        double best = 0, bestScore = double.MinValue;
        var diagonal = (int)Math.Ceiling(Math.Sqrt((double)small.Width * small.Width + (double)small.Height * small.Height));
        var bins = new int[2 * diagonal + 1];
        for (var tenths = -(int)(MaxSkewDegrees * 10); tenths <= MaxSkewDegrees * 10; tenths += 2)
        {
            var radians = tenths / 10.0 * Math.PI / 180;
            var (sin, cos) = Math.SinCos(radians);
            Array.Clear(bins);
            foreach (var (x, y) in dark)
            {
                var projected = (int)Math.Round(y * cos - x * sin) + diagonal;
                if ((uint)projected < (uint)bins.Length)
                {
                    bins[projected]++;
                }
            }

            double score = 0;
            foreach (var count in bins)
            {
                score += (double)count * count;
            }

            if (score > bestScore)
            {
                bestScore = score;
                best = tenths / 10.0;
            }
        }

        return best;
    }
}
