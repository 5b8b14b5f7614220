using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Google.Protobuf;
using MeshAI.Common.Crypto;
using MeshAI.Contracts.Job.V1;
using MeshAI.Testing;
using NUnit.Framework;

namespace MeshAI.Contracts.Tests;

/// <summary>
/// The TypeScript client's payload crypto (clients/typescript/src/crypto.ts, used by the web dashboard and browser devices)
/// against <see cref="PayloadCrypto"/>, in both directions: an envelope sealed in TypeScript opens in C# and one sealed in C#
/// opens in TypeScript; results sealed by either side to the other's submitter key open; a plan signed in C# verifies in
/// TypeScript and a tampered one does not. The TypeScript side is the BUILT package, driven by scripts/crypto-interop.mjs.
/// </summary>
[TestFixture]
[Category("Unit")]
public sealed class PayloadCryptoInteropTests
{
    private static readonly string[] Devices = ["dev_laptop", "dev_desktop"];
    private static readonly string ClientDirectory = RepoPaths.Combine("clients", "typescript");
    private ProcessRunner _node = null!;

    /// <summary>One node process answers every request of the fixture.</summary>
    [OneTimeSetUp]
    public void Start()
    {
        if (!File.Exists(Path.Combine(ClientDirectory, "dist", "crypto.js")))
        {
            Assert.Fail($"the TypeScript client is not built: run `npm ci && npm run build` in {ClientDirectory} (./test.sh does)");
        }

        _node = ProcessRunner.Start(new ProcessRunnerOptions
        {
            FileName = "node",
            Arguments = [Path.Combine(ClientDirectory, "scripts", "crypto-interop.mjs")],
            WorkingDirectory = ClientDirectory,
            RedirectStandardInput = true,
            Name = "crypto-interop",
        });
    }

    /// <summary>Ends the node process.</summary>
    [OneTimeTearDown]
    public async Task StopAsync()
    {
        if (_node is not null)
        {
            await _node.DisposeAsync();
        }
    }

    [Test]
    public async Task An_envelope_sealed_in_typescript_opens_in_csharp_and_the_csharp_result_opens_in_typescript()
    {
        var laptop = EncryptionKeyPair.Generate();
        var desktop = EncryptionKeyPair.Generate();
        var input = new WorkloadInput { Embeddings = new EmbeddingsInput { Texts = { "secret text " + Guid.NewGuid() } } };
        var envelope = new JobEnvelope
        {
            NetworkId = "net_interop",
            WorkloadId = Common.V1.WorkloadClass.Embeddings,
            InputManifest = new InputManifest { Payload = input.ToByteString(), PayloadSha256 = "abc" },
        };

        var encrypted = await AskAsync(new JsonObject
        {
            ["op"] = "encrypt",
            ["envelope"] = B64(envelope.ToByteArray()),
            ["recipients"] = new JsonArray(Recipient("dev_laptop", laptop), Recipient("dev_desktop", desktop)),
        });
        var sealedEnvelope = JobEnvelope.Parser.ParseFrom(Bytes(encrypted, "envelope"));
        Assert.Multiple(() =>
        {
            Assert.That(PayloadCrypto.IsEncrypted(sealedEnvelope), Is.True);
            Assert.That(sealedEnvelope.InputManifest.PayloadSha256, Is.Empty, "the plaintext hash is cleared");
            Assert.That(sealedEnvelope.InputManifest.Payload, Is.Not.EqualTo(input.ToByteString()));
            Assert.That(sealedEnvelope.PayloadEncryption.Recipients.Select(r => r.DeviceId), Is.EqualTo(Devices));
        });
        foreach (var (deviceId, key) in new[] { ("dev_laptop", laptop), ("dev_desktop", desktop) })
        {
            Assert.That(PayloadCrypto.DecryptEnvelope(sealedEnvelope, deviceId, key), Is.EqualTo(input.ToByteArray()), deviceId);
        }

        // The associated data binds network and workload: the same ciphertext under another network id does not open.
        var moved = sealedEnvelope.Clone();
        moved.NetworkId = "net_other";
        Assert.Throws<PayloadCryptoException>(() => PayloadCrypto.DecryptEnvelope(moved, "dev_laptop", laptop));

        var output = Encoding.UTF8.GetBytes("the device's answer");
        var (sealedOutput, nonce) = PayloadCrypto.SealToSubmitter(output, Bytes(encrypted, "submitterPublicKey"), "job_interop");
        var opened = await AskAsync(new JsonObject
        {
            ["op"] = "open", ["sealed"] = B64(sealedOutput), ["nonce"] = B64(nonce),
            ["privateKey"] = encrypted["submitterPrivateKey"]!.GetValue<string>(), ["jobId"] = "job_interop",
        });
        Assert.That(Bytes(opened, "plaintext"), Is.EqualTo(output));

        var wrongJob = await AskAsync(new JsonObject
        {
            ["op"] = "open", ["sealed"] = B64(sealedOutput), ["nonce"] = B64(nonce),
            ["privateKey"] = encrypted["submitterPrivateKey"]!.GetValue<string>(), ["jobId"] = "job_other",
        });
        Assert.That(wrongJob["error"]?.GetValue<string>(), Does.Contain("does not authenticate"), "a result is bound to its job id");
    }

    [Test]
    public async Task An_envelope_sealed_in_csharp_opens_in_typescript_and_the_typescript_result_opens_in_csharp()
    {
        var device = EncryptionKeyPair.Generate();
        var submitter = EncryptionKeyPair.Generate();
        var input = new WorkloadInput { Chat = new ChatInput { Messages = { new ChatMessage { Role = ChatRole.User, Content = "hello from C#" } } } };
        var envelope = new JobEnvelope
        {
            NetworkId = "net_interop",
            WorkloadId = Common.V1.WorkloadClass.SmallChat,
            InputManifest = new InputManifest { Payload = input.ToByteString() },
        };
        PayloadCrypto.EncryptEnvelope(envelope, [KeyValuePair.Create("dev_browser", device.PublicKey)], submitter.PublicKey);

        var decrypted = await AskAsync(new JsonObject
        {
            ["op"] = "decrypt", ["envelope"] = B64(envelope.ToByteArray()), ["deviceId"] = "dev_browser", ["privateKey"] = B64(device.PrivateKey),
        });
        Assert.That(Bytes(decrypted, "plaintext"), Is.EqualTo(input.ToByteArray()));

        var notForMe = await AskAsync(new JsonObject
        {
            ["op"] = "decrypt", ["envelope"] = B64(envelope.ToByteArray()), ["deviceId"] = "dev_someone_else", ["privateKey"] = B64(device.PrivateKey),
        });
        Assert.That(notForMe["error"]?.GetValue<string>(), Does.Contain("not wrapped for device"));

        var token = Encoding.UTF8.GetBytes(" world");
        var sealedToken = await AskAsync(new JsonObject { ["op"] = "seal", ["plaintext"] = B64(token), ["publicKey"] = B64(submitter.PublicKey), ["jobId"] = "job_tokens" });
        Assert.That(PayloadCrypto.OpenFromDevice(Bytes(sealedToken, "sealed"), Bytes(sealedToken, "nonce"), submitter, "job_tokens"), Is.EqualTo(token));
        Assert.Throws<PayloadCryptoException>(() => PayloadCrypto.OpenFromDevice(Bytes(sealedToken, "sealed"), Bytes(sealedToken, "nonce"), EncryptionKeyPair.Generate(), "job_tokens"));
    }

    [Test]
    public async Task A_plan_signed_by_the_control_key_in_csharp_verifies_in_typescript_and_a_changed_one_does_not()
    {
        var control = SigningKeyPair.Generate();
        var plan = new PlanJobResponse
        {
            Recipients =
            {
                new RecipientKey { DeviceId = "dev_a", EncryptionPublicKey = ByteString.CopyFrom(EncryptionKeyPair.Generate().PublicKey), CertificateSerial = "s1" },
                new RecipientKey { DeviceId = "dev_b", EncryptionPublicKey = ByteString.CopyFrom(EncryptionKeyPair.Generate().PublicKey), CertificateSerial = "s2" },
            },
            SigningKeyId = SigningKeyPair.KeyId(control.PublicKey),
        };
        plan.Signature = ByteString.CopyFrom(control.Sign(PayloadCrypto.PlanSignatureMessage("net_plan", plan.Recipients)));

        var valid = await AskAsync(new JsonObject { ["op"] = "verifyPlan", ["plan"] = B64(plan.ToByteArray()), ["networkId"] = "net_plan", ["publicKey"] = B64(control.PublicKey) });
        Assert.That(valid["valid"]!.GetValue<bool>(), Is.True, "TypeScript rebuilds the signed bytes exactly as C# serialises them");

        var swapped = plan.Clone();
        swapped.Recipients[1].EncryptionPublicKey = ByteString.CopyFrom(EncryptionKeyPair.Generate().PublicKey);
        var tampered = await AskAsync(new JsonObject { ["op"] = "verifyPlan", ["plan"] = B64(swapped.ToByteArray()), ["networkId"] = "net_plan", ["publicKey"] = B64(control.PublicKey) });
        Assert.That(tampered["valid"]!.GetValue<bool>(), Is.False, "a recipient key swapped after signing");

        var otherNetwork = await AskAsync(new JsonObject { ["op"] = "verifyPlan", ["plan"] = B64(plan.ToByteArray()), ["networkId"] = "net_other", ["publicKey"] = B64(control.PublicKey) });
        Assert.That(otherNetwork["valid"]!.GetValue<bool>(), Is.False, "the signature names the network");
    }

    private async Task<JsonObject> AskAsync(JsonObject request)
    {
        var from = _node.LineCount;
        await _node.StandardInput.WriteLineAsync(request.ToJsonString());
        await _node.StandardInput.FlushAsync();
        var line = await _node.WaitForLineAsync(l => l.StartsWith('{'), TimeSpan.FromSeconds(30), from);
        var answer = JsonNode.Parse(line.Text)!.AsObject();
        if (answer["error"] is { } error && request["op"]!.GetValue<string>() is "encrypt" or "seal" or "verifyPlan")
        {
            Assert.Fail($"{request["op"]}: {error}\n{_node.Output}");
        }

        return answer;
    }

    private static JsonObject Recipient(string deviceId, EncryptionKeyPair key) => new() { ["deviceId"] = deviceId, ["publicKey"] = B64(key.PublicKey) };

    private static string B64(byte[] bytes) => Convert.ToBase64String(bytes);

    private static byte[] Bytes(JsonObject answer, string name) =>
        answer[name] is { } value ? Convert.FromBase64String(value.GetValue<string>()) : throw new AssertionException($"no '{name}' in {answer.ToJsonString(new JsonSerializerOptions())}");
}
