using System.Net;
using System.Text;
using System.Text.Json;
using Fido2NetLib;
using Fido2NetLib.Objects;
using Google.Protobuf.WellKnownTypes;
using MeshAI.Common;
using MeshAI.Common.Errors;
using MeshAI.Contracts.Identity.V1;
using MeshAI.Control.Security;
using MeshAI.Control.Storage;
using Microsoft.Extensions.Options;

namespace MeshAI.Control.Identity;

/// <summary>
/// WebAuthn registration and login ceremonies (Fido2). Each Begin stores the exact options it sent in a single-use
/// <c>auth_ceremonies</c> row; each Finish consumes it, so a challenge verifies at most once and only before it expires.
/// </summary>
public sealed class PasskeyCeremonies(
    SecurityRepository store,
    IdentityRepository identity,
    LoginFlows logins,
    AuditLog audit,
    ServerEndpoint endpoint,
    IOptions<SecurityOptions> options,
    TimeProvider clock)
{
    private const string RegisterKind = "passkey_register";
    private const string LoginKind = "passkey_login";

    private long NowMs => clock.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>Step 1 of registration for the signed-in user: creation options (JSON) and the ceremony id.</summary>
    public async Task<BeginPasskeyRegistrationResponse> BeginRegistrationAsync(Caller caller, string passkeyName, CancellationToken ct)
    {
        var user = await identity.GetUserAsync(caller.UserId, ct) ?? throw RpcErrors.Unauthenticated("user no longer exists", ErrorReasons.SessionInvalid);
        var existing = await store.ListPasskeysAsync(user.UserId, ct);
        var creation = Fido().RequestNewCredential(new RequestNewCredentialParams
        {
            User = new Fido2User { Id = UserHandle(user.UserId), Name = user.Email, DisplayName = user.DisplayName.Length > 0 ? user.DisplayName : user.Email },
            ExcludeCredentials = existing.Select(p => new PublicKeyCredentialDescriptor(p.CredentialId)).ToList(),
            AuthenticatorSelection = new AuthenticatorSelection { ResidentKey = ResidentKeyRequirement.Preferred, UserVerification = UserVerificationRequirement.Preferred },
            AttestationPreference = AttestationConveyancePreference.None,
        });
        var name = string.IsNullOrWhiteSpace(passkeyName) ? "passkey" : passkeyName.Trim();

        var json = creation.ToJson();
        var ceremonyId = await StartCeremonyAsync(RegisterKind, user.UserId, JsonSerializer.Serialize(new PendingRegistration(name, json)), ct);
        return new BeginPasskeyRegistrationResponse { CeremonyId = ceremonyId, OptionsJson = json };
    }

    /// <summary>Step 2 of registration: verifies the attestation against the stored options and stores the credential.</summary>
    public async Task<Passkey> FinishRegistrationAsync(Caller caller, string ceremonyId, string attestationJson, CancellationToken ct)
    {
        var ceremony = await ConsumeAsync(ceremonyId, RegisterKind, ct);
        if (ceremony.UserId != caller.UserId)
        {
            throw RpcErrors.PermissionDenied("this registration ceremony belongs to another user", ErrorReasons.PasskeyCeremonyForbidden);
        }

        var pending = JsonSerializer.Deserialize<PendingRegistration>(ceremony.DataJson) ?? throw new InvalidOperationException("corrupt ceremony");
        var attestation = Parse<AuthenticatorAttestationRawResponse>(attestationJson, "attestation_json");
        RegisteredPublicKeyCredential credential;
        try
        {
            credential = await Fido().MakeNewCredentialAsync(new MakeNewCredentialParams
            {
                AttestationResponse = attestation,
                OriginalOptions = CredentialCreateOptions.FromJson(pending.OptionsJson),
                IsCredentialIdUniqueToUserCallback = async (args, token) => await store.FindPasskeyAsync(args.CredentialId, token) is null,
            }, ct);
        }
        catch (Fido2VerificationException e)
        {
            throw RpcErrors.PermissionDenied("passkey registration failed: " + e.Message, ErrorReasons.PasskeyRegistrationFailed);
        }

        var row = new PasskeyRow
        {
            PasskeyId = Ids.New("pk"),
            UserId = caller.UserId,
            Name = pending.Name,
            CredentialId = credential.Id,
            PublicKey = credential.PublicKey,
            UserHandle = UserHandle(caller.UserId),
            SignCount = credential.SignCount,
            CreateTimeMs = NowMs,
        };
        await store.InsertPasskeyAsync(row, ct);
        await audit.RecordAsync("", caller.UserId, MeshAI.Contracts.Audit.V1.AuditAction.Login, row.PasskeyId,
            new Dictionary<string, string> { ["method"] = "passkey", ["event"] = "passkey_registered", ["name"] = row.Name }, ct);
        return new Passkey { PasskeyId = row.PasskeyId, UserId = row.UserId, Name = row.Name, CreateTime = Timestamp.FromDateTimeOffset(DateTimeOffset.FromUnixTimeMilliseconds(row.CreateTimeMs)) };
    }

    /// <summary>
    /// Step 1 of login: request options. With an email the user's credentials are allowed (an unknown address gets the same
    /// answer as a discoverable login, so it reveals nothing); without one the authenticator picks a resident credential.
    /// </summary>
    public async Task<BeginPasskeyLoginResponse> BeginLoginAsync(string email, CancellationToken ct)
    {
        var allowed = new List<PublicKeyCredentialDescriptor>();
        if (!string.IsNullOrWhiteSpace(email) && await logins.FindUserAsync(email, ct) is { } user)
        {
            allowed.AddRange((await store.ListPasskeysAsync(user.UserId, ct)).Select(p => new PublicKeyCredentialDescriptor(p.CredentialId)));
        }

        var assertion = Fido().GetAssertionOptions(new GetAssertionOptionsParams
        {
            AllowedCredentials = allowed,
            UserVerification = UserVerificationRequirement.Preferred,
        });
        var json = assertion.ToJson();
        var ceremonyId = await StartCeremonyAsync(LoginKind, null, json, ct);
        return new BeginPasskeyLoginResponse { CeremonyId = ceremonyId, OptionsJson = json };
    }

    /// <summary>Step 2 of login: verifies the assertion (signature, challenge, origin, RP id, counter) and opens a session.</summary>
    public async Task<IssuedSession> FinishLoginAsync(string ceremonyId, string assertionJson, string clientName, CancellationToken ct)
    {
        var ceremony = await ConsumeAsync(ceremonyId, LoginKind, ct);
        var assertion = Parse<AuthenticatorAssertionRawResponse>(assertionJson, "assertion_json");
        var passkey = await store.FindPasskeyAsync(assertion.RawId, ct) ?? throw RpcErrors.Unauthenticated("unknown passkey", ErrorReasons.PasskeyLoginFailed);
        VerifyAssertionResult verified;
        try
        {
            verified = await Fido().MakeAssertionAsync(new MakeAssertionParams
            {
                AssertionResponse = assertion,
                OriginalOptions = AssertionOptions.FromJson(ceremony.DataJson),
                StoredPublicKey = passkey.PublicKey,
                StoredSignatureCounter = (uint)passkey.SignCount,
                IsUserHandleOwnerOfCredentialIdCallback = (args, _) => Task.FromResult(args.UserHandle.AsSpan().SequenceEqual(passkey.UserHandle)),
            }, ct);
        }
        catch (Fido2VerificationException e)
        {
            throw RpcErrors.Unauthenticated("passkey login failed: " + e.Message, ErrorReasons.PasskeyLoginFailed);
        }

        await store.UpdatePasskeyCounterAsync(passkey.PasskeyId, verified.SignCount, ct);
        var user = await identity.GetUserAsync(passkey.UserId, ct) ?? throw RpcErrors.Unauthenticated("user no longer exists", ErrorReasons.PasskeyLoginFailed);
        var session = await logins.IssueSessionAsync(user, string.IsNullOrWhiteSpace(clientName) ? "passkey" : clientName, ct);
        await audit.RecordAsync("", user.UserId, MeshAI.Contracts.Audit.V1.AuditAction.Login, session.Session.SessionId,
            new Dictionary<string, string> { ["method"] = "passkey", ["passkey_id"] = passkey.PasskeyId }, ct);
        return session;
    }

    /// <summary>
    /// The relying party: the configured RP id and origins, or (default) the public URL's host — "localhost" when it is an IP
    /// address, which WebAuthn does not accept as an RP id — with origins for the public URL and its localhost form.
    /// </summary>
    private Fido2 Fido()
    {
        var (rpId, origins) = RelyingParty();
        return new Fido2(new Fido2Configuration
        {
            RPID = rpId,
            RPName = options.Value.PasskeyRpName,
            Origins = origins,
            TimestampDriftTolerance = 300_000,
        });
    }

    /// <summary>The relying-party id passkeys are bound to and the origins ceremonies are accepted from (see <see cref="Fido"/>).</summary>
    public (string RpId, HashSet<string> Origins) RelyingParty()
    {
        var configured = options.Value;
        var publicUri = new Uri(endpoint.PublicUrl.Length > 0 ? endpoint.PublicUrl : "https://localhost");
        var isIp = IPAddress.TryParse(publicUri.Host.Trim('[', ']'), out _);
        var rpId = string.IsNullOrEmpty(configured.PasskeyRpId) ? (isIp ? "localhost" : publicUri.Host) : configured.PasskeyRpId;
        var origins = configured.PasskeyOrigins is { Length: > 0 } list
            ? list.ToHashSet(StringComparer.Ordinal)
            : new HashSet<string>(StringComparer.Ordinal) { publicUri.GetLeftPart(UriPartial.Authority), $"{publicUri.Scheme}://localhost:{publicUri.Port}" };
        return (rpId, origins);
    }

    private async Task<string> StartCeremonyAsync(string kind, string? userId, string dataJson, CancellationToken ct)
    {
        var now = NowMs;
        var row = new CeremonyRow
        {
            CeremonyId = Ids.New("cer"),
            Kind = kind,
            UserId = userId,
            DataJson = dataJson,
            CreateTimeMs = now,
            ExpireTimeMs = now + options.Value.CeremonyTtlSeconds * 1000L,
        };
        await store.InsertCeremonyAsync(row, ct);
        return row.CeremonyId;
    }

    private async Task<CeremonyRow> ConsumeAsync(string ceremonyId, string kind, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(ceremonyId))
        {
            throw RpcErrors.Required("ceremony_id");
        }

        return await store.ConsumeCeremonyAsync(ceremonyId, kind, NowMs, ct)
               ?? throw RpcErrors.FailedPrecondition("CEREMONY", ceremonyId, "the ceremony is unknown, already used or expired; start again", ErrorReasons.PasskeyCeremonyInvalid);
    }

    private static T Parse<T>(string json, string field)
        where T : class
    {
        if (string.IsNullOrWhiteSpace(json))
        {
            throw RpcErrors.Required(field);
        }

        try
        {
            return JsonSerializer.Deserialize<T>(json) ?? throw RpcErrors.InvalidArgument(field, "empty");
        }
        catch (JsonException e)
        {
            throw RpcErrors.InvalidArgument(field, "not a WebAuthn credential JSON: " + e.Message);
        }
    }

    /// <summary>The WebAuthn user handle: the user id's bytes (opaque to the authenticator, no personal data).</summary>
    private static byte[] UserHandle(string userId) => Encoding.UTF8.GetBytes(userId);

    private sealed record PendingRegistration(string Name, string OptionsJson);
}
