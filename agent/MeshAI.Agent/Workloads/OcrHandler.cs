using System.Globalization;
using MeshAI.Agent.Ocr;
using MeshAI.Contracts.Common.V1;
using MeshAI.Contracts.Job.V1;

namespace MeshAI.Agent.Workloads;

/// <summary>ocr_preprocess: ImageSharp cleanup (resize, denoise, deskew) then Tesseract; text + word boxes + confidence.</summary>
public sealed class OcrHandler : IWorkloadHandler
{
    private readonly string _tesseract;

    /// <summary>Creates the handler over a tesseract executable.</summary>
    public OcrHandler(string tesseract) => _tesseract = tesseract;

    /// <inheritdoc />
    public WorkloadClass Workload => WorkloadClass.OcrPreprocess;

    /// <inheritdoc />
    public WorkloadInput.InputOneofCase InputCase => WorkloadInput.InputOneofCase.Ocr;

    /// <inheritdoc />
    public async Task<WorkloadOutput> RunAsync(WorkloadInput input, IJobContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(context);
        var request = input.Ocr ?? throw new InvalidWorkloadInputException("ocr input missing");
        var language = string.IsNullOrEmpty(request.Language) ? "eng" : request.Language;
        if (!language.All(c => char.IsAsciiLetterLower(c) || c is '_' or '+'))
        {
            throw new InvalidWorkloadInputException($"language '{language}' is not a tesseract language code (e.g. eng)");
        }

        var bytes = context.RequireBlob(string.IsNullOrEmpty(request.ImageBlob) ? "image" : request.ImageBlob);
        byte[] png;
        PreprocessReport report;
        try
        {
            (png, report) = await Task.Run(() => ImagePreprocessor.Process(bytes, request.Deskew, request.Denoise, request.MaxSidePx), cancellationToken);
        }
        catch (SixLabors.ImageSharp.UnknownImageFormatException ex)
        {
            // ImageSharp's own message lists every decoder on several lines; one line says it all.
            throw new InvalidWorkloadInputException("the file is not an image the OCR worker can read (PNG, JPEG, GIF, BMP, TIFF or WebP expected)", ex);
        }
        catch (SixLabors.ImageSharp.InvalidImageContentException ex)
        {
            throw new InvalidWorkloadInputException("the image is damaged and could not be decoded: " + ex.Message.ReplaceLineEndings(" ").Trim(), ex);
        }

        await context.LogAsync(LogLevel.Info, string.Create(CultureInfo.InvariantCulture, $"preprocessed to {report.Width}x{report.Height}, skew {report.SkewDegrees:F1}°, denoise {report.Denoised}"), cancellationToken);
        await context.ReportProgressAsync(0.3, "image preprocessed", cancellationToken);
        var output = await TesseractOcr.RecognizeAsync(_tesseract, png, language, context.WorkDirectory, cancellationToken);
        await context.ReportProgressAsync(1, $"{output.Words.Count} words", cancellationToken);
        return new WorkloadOutput { Ocr = output };
    }
}
