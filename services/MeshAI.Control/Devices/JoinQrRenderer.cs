using QRCoder;

namespace MeshAI.Control.Devices;

/// <summary>Renders a join link as a text QR code for terminals.</summary>
public static class JoinQrRenderer
{
    /// <summary>ASCII-art QR code of <paramref name="text"/> (two characters per module, dark = "██").</summary>
    public static string Render(string text)
    {
        using var generator = new QRCodeGenerator();
        using var data = generator.CreateQrCode(text, QRCodeGenerator.ECCLevel.M);
        using var code = new AsciiQRCode(data);
        return code.GetGraphic(1, "██", "  ", drawQuietZones: true, endOfLine: "\n");
    }
}
