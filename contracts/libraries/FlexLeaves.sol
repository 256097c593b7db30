// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Merkle leaf encodings of docs/PROTOCOL.md
/// @notice A leaf is keccak256(bytes.concat(keccak256(data))) with data = abi.encode(kind, ...),
/// the double hash OpenZeppelin's MerkleProof expects (a leaf can never pass for an inner node).
library FlexLeaves {
    uint8 internal constant SAMPLE = 1;
    uint8 internal constant SETPOINT = 2;
    uint8 internal constant WINDOW = 3;
    uint8 internal constant OFFER = 4;
    uint8 internal constant REQUEST = 5;
    uint8 internal constant AWARD = 6;
    uint8 internal constant BASELINE = 7;
    uint8 internal constant DECISION = 8;

    function hashLeaf(bytes memory data) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(data)));
    }

    function sample(
        bytes32 pod,
        uint64 t,
        int64 pW,
        int64 qVar,
        uint64 vMv,
        uint64 seq
    ) internal pure returns (bytes32) {
        return hashLeaf(abi.encode(SAMPLE, pod, t, pW, qVar, vMv, seq));
    }

    function setpoint(bytes32 pod, bytes32 setpointHash, uint64 receivedAt) internal pure returns (bytes32) {
        return hashLeaf(abi.encode(SETPOINT, pod, setpointHash, receivedAt));
    }

    function window(
        bytes32 pod,
        uint64 windowStart,
        bytes32 root,
        uint32 sampleCount,
        bytes32 setpointsHash
    ) internal pure returns (bytes32) {
        return hashLeaf(abi.encode(WINDOW, pod, windowStart, root, sampleCount, setpointsHash));
    }

    function offer(bytes32 offerHash) internal pure returns (bytes32) {
        return hashLeaf(abi.encode(OFFER, offerHash));
    }

    function request(bytes32 requestHash) internal pure returns (bytes32) {
        return hashLeaf(abi.encode(REQUEST, requestHash));
    }

    function award(
        bytes32 session,
        bytes32 offerHash,
        bytes32 requestHash,
        uint64 mtuStart,
        uint64 powerW,
        uint64 priceCentsPerMwh
    ) internal pure returns (bytes32) {
        return hashLeaf(abi.encode(AWARD, session, offerHash, requestHash, mtuStart, powerW, priceCentsPerMwh));
    }

    function baseline(bytes32 pod, uint64 mtuStart, int64 eWh) internal pure returns (bytes32) {
        return hashLeaf(abi.encode(BASELINE, pod, mtuStart, eWh));
    }

    function decision(bytes32 awardLeaf, bool approved, bytes32 reason) internal pure returns (bytes32) {
        return hashLeaf(abi.encode(DECISION, awardLeaf, approved, reason));
    }
}
