using System.Globalization;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common;
using MeshAI.Common.Crypto;
using MeshAI.Common.Errors;
using MeshAI.Common.Transport;
using MeshAI.Contracts.Device.V1;
using MeshAI.Control.Identity;
using MeshAI.Control.Networks;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Devices;

/// <summary>Adding devices: join tokens (link + QR), registration with proof of key possession, device-code pairing.</summary>
public sealed class DeviceEnrollment(
    Database database,
    DeviceRepository devices,
    NetworkAccess access,
    NetworkKeyVault keys,
    ServerEndpoint endpoint,
    IOptions<ControlPlaneOptions> options,
    TimeProvider clock,
    ILogger<DeviceEnrollment> logger,
    SecurityRepository security,
    MeshAI.Control.Security.AuditLog audit)
{
    private const int PublicKeySize = 32;

    private ControlLimits Limits => options.Value.Limits;

    /// <summary>Creates a join token for the network (admin or member) and renders its link and QR code.</summary>
    public async Task<CreateJoinTokenResponse> CreateJoinTokenAsync(Caller caller, CreateJoinTokenRequest request, CancellationToken ct)
    {
        // ttl_seconds and max_uses are bounded by the request layer (RequestBoundsTable); 0 takes the default.
        var membership = await access.RequireMemberOrAdminAsync(caller, request.NetworkId, "add devices", ct);

        var ttl = request.TtlSeconds == 0 ? Limits.JoinTokenDefaultTtlSeconds : request.TtlSeconds;
        var (row, secret) = NewJoinToken(membership.Network.NetworkId, caller.UserId, TimeSpan.FromSeconds(ttl), request.MaxUses == 0 ? 1 : request.MaxUses);
        await devices.InsertJoinTokenAsync(row, ct);
        var link = new JoinLink(endpoint.PublicUrl, secret, endpoint.TlsFingerprint).ToString();
        return new CreateJoinTokenResponse
        {
            JoinToken = ToProto(row),
            JoinLink = link,
            QrText = JoinQrRenderer.Render(link),
            WebJoinLink = JoinLink.WebContributorLink(endpoint.PublicUrl, secret),
        };
    }

    /// <summary>Registers a device: checks the token, the proof of key possession, then issues its certificate.</summary>
    public async Task<RegisterDeviceResponse> RegisterAsync(RegisterDeviceRequest request, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(request.JoinToken))
        {
            throw RpcErrors.Required("join_token");
        }

        if (request.SigningPublicKey.Length != PublicKeySize)
        {
            throw RpcErrors.InvalidArgument("signing_public_key", "must be a raw 32-byte ed25519 public key");
        }

        if (request.EncryptionPublicKey.Length != PublicKeySize)
        {
            throw RpcErrors.InvalidArgument("encryption_public_key", "must be a raw 32-byte X25519 public key");
        }

        if (string.IsNullOrWhiteSpace(request.InstallationId))
        {
            throw RpcErrors.Required("installation_id");
        }

        var name = (request.DeviceName ?? "").Trim();

        var now = clock.GetUtcNow();
        var skew = Math.Abs(now.ToUnixTimeMilliseconds() - request.TimestampUnixMs);
        if (skew > Limits.ProofClockSkewSeconds * 1000L)
        {
            throw RpcErrors.InvalidArgument("timestamp_unix_ms", $"clock differs from the server's by more than {Limits.ProofClockSkewSeconds} s");
        }

        var proof = ProofMessages.Register(request.JoinToken, request.InstallationId, request.TimestampUnixMs,
            request.SigningPublicKey.Span, request.EncryptionPublicKey.Span);
        if (!SigningKeyPair.Verify(request.SigningPublicKey.Span, proof, request.ProofSignature.Span))
        {
            throw RpcErrors.Unauthenticated("proof of key possession does not verify (proof_signature)", ErrorReasons.DeviceProofInvalid);
        }

        var capabilities = request.Capabilities ?? new CapabilityReport();
        var deviceId = Ids.New("dev");
        var serial = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var notAfter = now.AddDays(Limits.CertificateValidityDays);

        var (device, certificate, keyRows) = await database.InTransactionAsync(async (c, tx) =>
        {
            var token = await DeviceRepository.FindJoinTokenAsync(c, tx, Secrets.Hash(request.JoinToken), ct)
                        ?? throw RpcErrors.Unauthenticated("join token is not valid for this server", ErrorReasons.JoinTokenInvalid);
            if (token.ExpireTimeMs <= now.ToUnixTimeMilliseconds())
            {
                throw RpcErrors.FailedPrecondition("JOIN_TOKEN", token.JoinTokenId, "join token expired", ErrorReasons.JoinTokenExpired);
            }

            if (!await DeviceRepository.UseJoinTokenAsync(c, tx, token.JoinTokenId, ct))
            {
                throw RpcErrors.FailedPrecondition("JOIN_TOKEN", token.JoinTokenId, "join token has no uses left", ErrorReasons.JoinTokenUsedUp);
            }

            await Ledger.JobBudget.EnsureCanAddDeviceAsync(c, tx, token.NetworkId, options.Value.Ledger.FreeTier, ct);
            var keySet = await keys.GetKeysAsync(token.NetworkId, ct);
            var row = new DeviceRow
            {
                DeviceId = deviceId,
                NetworkId = token.NetworkId,
                OwnerUserId = token.CreatedByUserId,
                Name = name.Length == 0 ? "device-" + deviceId[4..10] : name,
                Platform = (int)capabilities.Platform,
                InstallationId = request.InstallationId,
                SigningPublicKey = request.SigningPublicKey.ToByteArray(),
                EncryptionPublicKey = request.EncryptionPublicKey.ToByteArray(),
                Capabilities = capabilities.ToByteArray(),
                ContributionMode = (int)ContributionMode.ManualToggle,
                ContributionEnabled = true,
                TrustLevel = 1,
                CertificateSerial = serial,
                CreateTimeMs = now.ToUnixTimeMilliseconds(),
            };
            await DeviceRepository.InsertDeviceAsync(c, tx, row, ct);
            var cert = DeviceCertificates.Issue(new DeviceCertificateDetails
            {
                DeviceId = deviceId,
                NetworkId = token.NetworkId,
                OwnerUserId = row.OwnerUserId,
                SigningPublicKey = request.SigningPublicKey,
                EncryptionPublicKey = request.EncryptionPublicKey,
                NotBefore = Timestamp.FromDateTimeOffset(now),
                NotAfter = Timestamp.FromDateTimeOffset(notAfter),
                Serial = serial,
                CaKeyId = keySet.CaKeyId,
                InstallationId = request.InstallationId,
            }, keySet.Ca);
            return (row, cert, keySet.Rows);
        }, ct);

        logger.LogInformation("Registered device {DeviceId} in {NetworkId}", device.DeviceId, device.NetworkId);
        var controlKey = keyRows.FirstOrDefault(r => r.Purpose == (int)NetworkKeyPurpose.ControlSigning);
        if (controlKey is not null)
        {
            await security.SetDeviceControlKeyAsync(device.DeviceId, controlKey.KeyId, ct);
        }

        await audit.RecordAsync(device.NetworkId, device.OwnerUserId, MeshAI.Contracts.Audit.V1.AuditAction.DeviceJoined, device.DeviceId,
            new Dictionary<string, string> { ["name"] = device.Name, ["serial"] = device.CertificateSerial }, ct);
        return new RegisterDeviceResponse
        {
            Device = DeviceCards.ToProto(device, null),
            Certificate = certificate,
            NetworkKeys = { NetworkKeyVault.PublicKeys(keyRows) },
            RelayUrl = options.Value.RelayUrlList.Count > 0 ? options.Value.RelayUrlList[0] : endpoint.PublicUrl,
            RelayUrls = { options.Value.RelayUrlList },
        };
    }

    /// <summary>Device-code pairing step 1: a short code for the device to show.</summary>
    public async Task<StartDevicePairingResponse> StartPairingAsync(StartDevicePairingRequest request, CancellationToken ct)
    {
        var secret = Secrets.NewToken("dps");
        var now = clock.GetUtcNow();
        var expires = now.AddMinutes(Limits.DeviceCodeTtlMinutes);
        var row = new PairingRow
        {
            PairingId = Ids.New("dpr"),
            SecretHash = Secrets.Hash(secret),
            UserCode = Secrets.NewUserCode(),
            DeviceName = (request.DeviceName ?? "").Trim(),
            InstallationId = request.InstallationId ?? "",
            State = (int)PairingState.Pending,
            CreateTimeMs = now.ToUnixTimeMilliseconds(),
            ExpireTimeMs = expires.ToUnixTimeMilliseconds(),
        };
        await devices.InsertPairingAsync(row, ct);
        return new StartDevicePairingResponse { PairingSecret = secret, UserCode = row.UserCode, ExpireTime = Timestamp.FromDateTimeOffset(expires) };
    }

    /// <summary>Device-code pairing step 2: an admin or member approves the code into a network.</summary>
    public async Task ApprovePairingAsync(Caller caller, ApproveDevicePairingRequest request, CancellationToken ct)
    {
        var membership = await access.RequireMemberOrAdminAsync(caller, request.NetworkId, "add devices", ct);
        var code = (request.UserCode ?? "").Trim().ToUpperInvariant();
        if (code.Length == 0)
        {
            throw RpcErrors.Required("user_code");
        }

        if (!await devices.ApprovePairingAsync(code, membership.Network.NetworkId, caller.UserId, (int)PairingState.Approved, (int)PairingState.Pending,
                clock.GetUtcNow().ToUnixTimeMilliseconds(), ct))
        {
            throw RpcErrors.NotFound("device_pairing", code);
        }
    }

    /// <summary>Device-code pairing step 3: once approved, hands out a single-use join token exactly once.</summary>
    public async Task<PollDevicePairingResponse> PollPairingAsync(PollDevicePairingRequest request, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(request.PairingSecret))
        {
            throw RpcErrors.Required("pairing_secret");
        }

        var pairing = await devices.FindPairingAsync(Secrets.Hash(request.PairingSecret), ct) ?? throw RpcErrors.NotFound("device_pairing", "pairing_secret");
        var now = clock.GetUtcNow();
        if (pairing.State == (int)PairingState.Pending)
        {
            return new PollDevicePairingResponse { State = pairing.ExpireTimeMs <= now.ToUnixTimeMilliseconds() ? PairingState.Expired : PairingState.Pending };
        }

        var response = new PollDevicePairingResponse { State = (PairingState)pairing.State };
        if (pairing.State == (int)PairingState.Approved && pairing.NetworkId is not null && pairing.ApprovedByUserId is not null && !pairing.Delivered)
        {
            var (token, secret) = NewJoinToken(pairing.NetworkId, pairing.ApprovedByUserId, TimeSpan.FromMinutes(Limits.DeviceCodeTtlMinutes), 1);
            if (await devices.DeliverPairingAsync(pairing.PairingId, token, ct))
            {
                response.JoinToken = secret;
            }
        }

        return response;
    }

    private (JoinTokenRow Row, string Secret) NewJoinToken(string networkId, string userId, TimeSpan ttl, int maxUses)
    {
        var secret = Secrets.NewToken("jt");
        var now = clock.GetUtcNow();
        return (new JoinTokenRow
        {
            JoinTokenId = Ids.New("jti"),
            NetworkId = networkId,
            TokenHash = Secrets.Hash(secret),
            CreatedByUserId = userId,
            CreateTimeMs = now.ToUnixTimeMilliseconds(),
            ExpireTimeMs = now.Add(ttl).ToUnixTimeMilliseconds(),
            MaxUses = maxUses,
        }, secret);
    }

    private static JoinToken ToProto(JoinTokenRow row) => new()
    {
        JoinTokenId = row.JoinTokenId,
        NetworkId = row.NetworkId,
        CreatedByUserId = row.CreatedByUserId,
        ExpireTime = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(row.ExpireTimeMs)),
        MaxUses = row.MaxUses,
        Uses = row.Uses,
    };
}
