// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IFlexRoles} from "./interfaces/IFlexRoles.sol";
import {IMeasurementAnchor} from "./interfaces/IMeasurementAnchor.sol";
import {FlexLeaves} from "./libraries/FlexLeaves.sol";
import {FlexRoleIds} from "./libraries/FlexRoleIds.sol";

/// @title MeasurementAnchor: the Blockchain Access Layer of the Light Nodes
/// @notice A Light Node anchors the Merkle root of each window of its 4-second samples (and the
/// set-points it received) from its own key; a concentrator anchors one root over many devices'
/// window leaves. Any sample can then be proven against the chain.
/// @dev The device registry lives here rather than in FlexRoles so that `anchor` checks the
/// sender with one SLOAD of this contract's storage; asking FlexRoles would add a cold
/// cross-contract call (~2.6k gas, ~12 gas per sample) to every anchor. Device admin calls,
/// which are rare, ask FlexRoles for the admin role instead.
contract MeasurementAnchor is IMeasurementAnchor {
    IFlexRoles private immutable _roles;
    uint64 private immutable _windowSeconds;

    mapping(bytes32 pod => address device) private _deviceOf;
    mapping(address device => bytes32 pod) private _podOf;
    mapping(bytes32 pod => mapping(uint64 windowStart => bytes32 root)) private _windowRoots;
    mapping(address concentrator => mapping(uint64 batchId => bytes32 root)) private _batchRoots;

    /// @param roles_ The FlexRoles contract.
    /// @param windowSeconds_ Length of a window in seconds (900 = one quarter-hour, 225 samples).
    constructor(IFlexRoles roles_, uint64 windowSeconds_) {
        if (address(roles_) == address(0)) revert MeasurementAnchorZeroAddress();
        if (windowSeconds_ == 0) revert MeasurementAnchorZeroWindow();
        _roles = roles_;
        _windowSeconds = windowSeconds_;
    }

    modifier onlyAdmin() {
        if (!_roles.isAdmin(msg.sender)) revert MeasurementAnchorNotAdmin(msg.sender);
        _;
    }

    // ----------------------------------------------------------------- devices

    /// @notice Bind a Light Node key to a POD. A new key for a POD that has one rotates it: the
    /// old key can no longer anchor.
    /// @param pod keccak256 of the POD code.
    /// @param device The Light Node's signing key.
    function registerDevice(bytes32 pod, address device) external onlyAdmin {
        if (device == address(0)) revert MeasurementAnchorZeroAddress();
        bytes32 boundTo = _podOf[device];
        if (boundTo != bytes32(0) && boundTo != pod) revert MeasurementAnchorDeviceBound(device, boundTo);
        address previous = _deviceOf[pod];
        if (previous != address(0) && previous != device) delete _podOf[previous];
        _deviceOf[pod] = device;
        _podOf[device] = pod;
        emit DeviceRegistered(pod, device, previous);
    }

    /// @notice Unbind the device of a POD; its windows stay anchored.
    /// @param pod keccak256 of the POD code.
    function revokeDevice(bytes32 pod) external onlyAdmin {
        address device = _deviceOf[pod];
        if (device == address(0)) revert MeasurementAnchorNoDevice(pod);
        delete _deviceOf[pod];
        delete _podOf[device];
        emit DeviceRevoked(pod, device);
    }

    // ----------------------------------------------------------------- anchoring

    /// @notice Anchor the Merkle root of one window of the caller's POD.
    /// @dev The root is the only storage written; the count and set-point hash go in the event.
    /// @param pod keccak256 of the POD code; the caller must be its device.
    /// @param windowStart Start of the window in seconds, a multiple of `windowSeconds()`.
    /// @param root Merkle root over the window's sample leaves, then its set-point leaves.
    /// @param sampleCount Number of sample leaves in the tree.
    /// @param setpointsHash keccak256 of the set-point leaves, or zero when none.
    function anchor(
        bytes32 pod,
        uint64 windowStart,
        bytes32 root,
        uint32 sampleCount,
        bytes32 setpointsHash
    ) external {
        if (_deviceOf[pod] != msg.sender) revert MeasurementAnchorNotDevice(pod, msg.sender);
        if (windowStart % _windowSeconds != 0) revert MeasurementAnchorWindowUnaligned(windowStart, _windowSeconds);
        if (root == bytes32(0)) revert MeasurementAnchorEmptyRoot();
        mapping(uint64 => bytes32) storage roots = _windowRoots[pod];
        if (roots[windowStart] != bytes32(0)) revert MeasurementAnchorWindowTaken(pod, windowStart);
        roots[windowStart] = root;
        emit MeasurementsAnchored(pod, windowStart, root, sampleCount, setpointsHash);
    }

    /// @notice Anchor one root over many devices' window leaves (kind 3), as a concentrator.
    /// @dev The device signatures and the uniqueness of each window are checked off chain by
    /// the SCD and the auditor.
    /// @param batchId The concentrator's id for this batch, used once.
    /// @param root Merkle root over the window leaves.
    /// @param windowCount Number of window leaves.
    /// @param sampleCount Total number of samples under those windows.
    function anchorBatch(uint64 batchId, bytes32 root, uint32 windowCount, uint32 sampleCount) external {
        if (!_roles.hasRole(FlexRoleIds.CONCENTRATOR, msg.sender)) revert MeasurementAnchorNotConcentrator(msg.sender);
        if (root == bytes32(0)) revert MeasurementAnchorEmptyRoot();
        mapping(uint64 => bytes32) storage roots = _batchRoots[msg.sender];
        if (roots[batchId] != bytes32(0)) revert MeasurementAnchorBatchTaken(msg.sender, batchId);
        roots[batchId] = root;
        emit BatchAnchored(msg.sender, batchId, root, windowCount, sampleCount);
    }

    // ----------------------------------------------------------------- views

    /// @inheritdoc IMeasurementAnchor
    function deviceOf(bytes32 pod) external view returns (address) {
        return _deviceOf[pod];
    }

    /// @inheritdoc IMeasurementAnchor
    function podOf(address device) external view returns (bytes32) {
        return _podOf[device];
    }

    /// @inheritdoc IMeasurementAnchor
    function windowRoot(bytes32 pod, uint64 windowStart) external view returns (bytes32) {
        return _windowRoots[pod][windowStart];
    }

    /// @inheritdoc IMeasurementAnchor
    function batchRoot(address concentrator, uint64 batchId) external view returns (bytes32) {
        return _batchRoots[concentrator][batchId];
    }

    /// @notice Length of a window in seconds.
    function windowSeconds() external view returns (uint64) {
        return _windowSeconds;
    }

    /// @notice The FlexRoles contract.
    function roles() external view returns (IFlexRoles) {
        return _roles;
    }

    /// @notice Whether `leaf` is in the anchored tree of a POD's window.
    /// @param pod keccak256 of the POD code.
    /// @param windowStart Start of the window.
    /// @param leaf The leaf hash (double-hashed).
    /// @param proof Sibling hashes from the leaf up.
    function verify(
        bytes32 pod,
        uint64 windowStart,
        bytes32 leaf,
        bytes32[] calldata proof
    ) public view returns (bool) {
        bytes32 root = _windowRoots[pod][windowStart];
        return root != bytes32(0) && MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @notice Whether a sample is in the anchored tree of the window that contains it.
    /// @param sample The sample.
    /// @param proof Sibling hashes from its leaf up.
    function verifySample(Sample calldata sample, bytes32[] calldata proof) external view returns (bool) {
        uint64 windowStart = sample.t - (sample.t % _windowSeconds);
        return verify(sample.pod, windowStart, sampleLeaf(sample), proof);
    }

    /// @notice Whether `leaf` is in a window whose window leaf is in a concentrator's batch.
    /// @param concentrator The concentrator that anchored the batch.
    /// @param batchId The batch id.
    /// @param window The device's window (its window leaf is proven against the batch root).
    /// @param windowProof Sibling hashes from the window leaf up to the batch root.
    /// @param leaf A leaf of the window's tree (a sample or a set-point leaf).
    /// @param proof Sibling hashes from `leaf` up to `window.root`.
    function verifyBatched(
        address concentrator,
        uint64 batchId,
        Window calldata window,
        bytes32[] calldata windowProof,
        bytes32 leaf,
        bytes32[] calldata proof
    ) external view returns (bool) {
        bytes32 root = _batchRoots[concentrator][batchId];
        if (root == bytes32(0)) return false;
        if (!MerkleProof.verifyCalldata(windowProof, root, windowLeaf(window))) return false;
        return MerkleProof.verifyCalldata(proof, window.root, leaf);
    }

    /// @notice The leaf hash of a sample (kind 1).
    /// @param sample The sample.
    function sampleLeaf(Sample calldata sample) public pure returns (bytes32) {
        return FlexLeaves.sample(sample.pod, sample.t, sample.pW, sample.qVar, sample.vMv, sample.seq);
    }

    /// @notice The leaf hash of a received set-point (kind 2).
    /// @param pod keccak256 of the POD code.
    /// @param setpointHash EIP-712 struct hash of the signed SetPoint.
    /// @param receivedAt When the Light Node received it, in seconds.
    function setpointLeaf(bytes32 pod, bytes32 setpointHash, uint64 receivedAt) external pure returns (bytes32) {
        return FlexLeaves.setpoint(pod, setpointHash, receivedAt);
    }

    /// @notice The leaf hash of a window in a concentrator batch (kind 3).
    /// @param window The window.
    function windowLeaf(Window calldata window) public pure returns (bytes32) {
        return FlexLeaves.window(window.pod, window.windowStart, window.root, window.sampleCount, window.setpointsHash);
    }
}
