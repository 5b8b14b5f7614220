namespace MeshAI.Control;

/// <summary>How clients and devices reach this server: public URL and TLS fingerprint, known once the host has bound its port.</summary>
public sealed class ServerEndpoint
{
    private volatile string _publicUrl = "";
    private volatile string _fingerprint = "";

    /// <summary>Public base URL ("https://127.0.0.1:7443"), without a trailing slash.</summary>
    public string PublicUrl => _publicUrl;

    /// <summary>Lower-case hex SHA-256 of the TLS certificate (empty when TLS is terminated elsewhere).</summary>
    public string TlsFingerprint => _fingerprint;

    /// <summary>Set by the host after Kestrel has bound.</summary>
    public void Set(string publicUrl, string tlsFingerprint)
    {
        _publicUrl = publicUrl.TrimEnd('/');
        _fingerprint = tlsFingerprint;
    }
}
