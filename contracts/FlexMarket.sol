// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IFlexMarket} from "./interfaces/IFlexMarket.sol";
import {IFlexRoles} from "./interfaces/IFlexRoles.sol";
import {FlexLeaves} from "./libraries/FlexLeaves.sol";
import {FlexRoleIds} from "./libraries/FlexRoleIds.sol";

/// @title FlexMarket: the market's commitments
/// @notice A session carries its kind, delivery period, baseline method and pricing rule; the
/// market operator moves it forward only: open → gate closed (order-book root) → validation
/// rounds (each DSO-signed) → outcome committed (awards root, total cost) → settled. Activation
/// orders are recorded with their issuer's signature. Checks follow the session's state, never
/// `block.timestamp`.
contract FlexMarket is IFlexMarket {
    bytes32 public constant VALIDATION_TYPEHASH =
        keccak256(
            "Validation(bytes32 session,uint32 round,bytes32 awardsRoot,bytes32 decisionsRoot,uint32 approvedCount,uint32 rejectedCount,uint64 nonce)"
        );
    bytes32 public constant ORDER_TYPEHASH =
        keccak256(
            "Order(bytes32 session,bytes32 offerHash,bytes32 requestHash,uint64 mtuStart,uint32 mtuCount,uint64 powerW,uint64 nonce,uint64 expiry)"
        );

    IFlexRoles private immutable _roles;
    mapping(bytes32 session => Session) private _sessions;
    mapping(bytes32 session => mapping(uint32 round => ValidationRecord)) private _validations;
    mapping(bytes32 orderHash => address issuer) private _orderIssuers;

    /// @param roles_ The FlexRoles contract.
    constructor(IFlexRoles roles_) {
        _roles = roles_;
    }

    modifier onlyOperator() {
        if (!_roles.hasRole(FlexRoleIds.MARKET_OPERATOR, msg.sender)) revert FlexMarketNotOperator(msg.sender);
        _;
    }

    function _inState(bytes32 session, SessionState expected) private view returns (Session storage s) {
        s = _sessions[session];
        if (s.state != expected) revert FlexMarketWrongState(session, s.state, expected);
    }

    /// @notice Open a session.
    /// @param session id32 of the session id.
    /// @param kind 0 day-ahead, 1 real-time.
    /// @param deliveryStart Start of the first MTU, in seconds.
    /// @param mtuCount Number of MTUs delivered (96 day-ahead, 16 real-time).
    /// @param baselineMethod id32 of the baseline method.
    /// @param pricingRule id32 of the pricing rule.
    function openSession(
        bytes32 session,
        uint8 kind,
        uint64 deliveryStart,
        uint32 mtuCount,
        bytes32 baselineMethod,
        bytes32 pricingRule
    ) external onlyOperator {
        Session storage s = _sessions[session];
        if (s.state != SessionState.None) revert FlexMarketSessionExists(session);
        if (kind > 1) revert FlexMarketInvalidKind(kind);
        if (mtuCount == 0) revert FlexMarketEmptyDelivery();
        s.kind = kind;
        s.state = SessionState.Open;
        s.deliveryStart = deliveryStart;
        s.mtuCount = mtuCount;
        s.baselineMethod = baselineMethod;
        s.pricingRule = pricingRule;
        emit SessionOpened(session, kind, deliveryStart, mtuCount, baselineMethod, pricingRule);
    }

    /// @notice Close the gate and commit the root of the signed order book.
    /// @param session The session.
    /// @param orderBookRoot Merkle root of its offer (kind 4) and request (kind 5) leaves.
    /// @param offerCount Number of offers in the book.
    /// @param requestCount Number of requests in the book.
    function closeGate(
        bytes32 session,
        bytes32 orderBookRoot,
        uint32 offerCount,
        uint32 requestCount
    ) external onlyOperator {
        Session storage s = _inState(session, SessionState.Open);
        s.state = SessionState.GateClosed;
        s.orderBookRoot = orderBookRoot;
        s.offerCount = offerCount;
        s.requestCount = requestCount;
        s.gateClosedBlock = uint64(block.number);
        emit SessionGateClosed(session, orderBookRoot, offerCount, requestCount);
    }

    /// @notice Record the next validation round, signed by a DSO.
    /// @param v The DSO's Validation message; `v.round` must be the next round (1, 2, …).
    /// @param dsoSignature The DSO's EIP-712 signature (65 bytes r‖s‖v).
    function recordValidation(Validation calldata v, bytes calldata dsoSignature) external onlyOperator {
        Session storage s = _inState(v.session, SessionState.GateClosed);
        uint32 expected = s.validationRounds + 1;
        if (v.round != expected) revert FlexMarketRoundOutOfOrder(v.session, expected, v.round);
        bytes32 validationHash = hashValidation(v);
        address dso = _recover(validationHash, dsoSignature);
        if (!_roles.hasRole(FlexRoleIds.DSO, dso)) revert FlexMarketSignerNotDso(dso);
        s.validationRounds = expected;
        _validations[v.session][expected] = ValidationRecord({
            validationHash: validationHash,
            awardsRoot: v.awardsRoot,
            decisionsRoot: v.decisionsRoot,
            dso: dso,
            approvedCount: v.approvedCount,
            rejectedCount: v.rejectedCount
        });
        emit ValidationRecorded(
            v.session,
            expected,
            dso,
            validationHash,
            v.awardsRoot,
            v.decisionsRoot,
            v.approvedCount,
            v.rejectedCount
        );
    }

    /// @notice Commit the final outcome: the awards root the last validation round approved.
    /// @param session The session.
    /// @param awardsRoot Merkle root of the award leaves (kind 6).
    /// @param totalCostCents Total cost of the awards in euro cents.
    /// @param awardCount Number of awards.
    function commitOutcome(
        bytes32 session,
        bytes32 awardsRoot,
        uint64 totalCostCents,
        uint32 awardCount
    ) external onlyOperator {
        Session storage s = _inState(session, SessionState.GateClosed);
        uint32 rounds = s.validationRounds;
        if (rounds == 0) revert FlexMarketOutcomeNotValidated(session, awardsRoot);
        ValidationRecord storage last = _validations[session][rounds];
        if (last.awardsRoot != awardsRoot || last.rejectedCount != 0) {
            revert FlexMarketOutcomeNotValidated(session, awardsRoot);
        }
        s.state = SessionState.OutcomeCommitted;
        s.awardsRoot = awardsRoot;
        s.totalCostCents = totalCostCents;
        s.awardCount = awardCount;
        emit SessionOutcomeCommitted(session, awardsRoot, totalCostCents, awardCount);
    }

    /// @notice Record an activation order, signed by a DSO or TSO, once per order hash.
    /// @param order The Order message; its session must have its outcome committed.
    /// @param issuerSignature The issuer's EIP-712 signature (65 bytes r‖s‖v).
    function recordOrder(Order calldata order, bytes calldata issuerSignature) external onlyOperator {
        _inState(order.session, SessionState.OutcomeCommitted);
        bytes32 orderHash = hashOrder(order);
        if (_orderIssuers[orderHash] != address(0)) revert FlexMarketOrderExists(orderHash);
        address issuer = _recover(orderHash, issuerSignature);
        if (!_roles.hasRole(FlexRoleIds.DSO, issuer) && !_roles.hasRole(FlexRoleIds.TSO, issuer)) {
            revert FlexMarketSignerNotIssuer(issuer);
        }
        _orderIssuers[orderHash] = issuer;
        emit OrderRecorded(
            orderHash,
            order.session,
            issuer,
            order.offerHash,
            order.requestHash,
            order.mtuStart,
            order.mtuCount,
            order.powerW
        );
    }

    /// @notice Mark a session settled; nothing more can be recorded or settled for it.
    /// @param session The session.
    function markSettled(bytes32 session) external onlyOperator {
        Session storage s = _inState(session, SessionState.OutcomeCommitted);
        s.state = SessionState.Settled;
        emit SessionSettled(session);
    }

    function _recover(bytes32 structHash, bytes calldata signature) private view returns (address signer) {
        signer = _roles.recoverSigner(structHash, signature);
        if (signer == address(0)) revert FlexMarketInvalidSignature();
    }

    // ----------------------------------------------------------------- views

    /// @inheritdoc IFlexMarket
    function sessionOf(bytes32 session) external view returns (Session memory) {
        return _sessions[session];
    }

    /// @notice A recorded validation round (zero when not recorded).
    /// @param session The session.
    /// @param round The round, from 1.
    function validationOf(bytes32 session, uint32 round) external view returns (ValidationRecord memory) {
        return _validations[session][round];
    }

    /// @notice The issuer of a recorded order (zero when not recorded).
    /// @param orderHash The order's EIP-712 struct hash.
    function orderIssuer(bytes32 orderHash) external view returns (address) {
        return _orderIssuers[orderHash];
    }

    /// @notice Whether `leaf` (an offer or request leaf) is in the session's order-book root.
    /// @param session The session.
    /// @param leaf The leaf hash.
    /// @param proof Sibling hashes from the leaf up.
    function verifyOrderBook(bytes32 session, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        bytes32 root = _sessions[session].orderBookRoot;
        return root != bytes32(0) && MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @inheritdoc IFlexMarket
    function verifyAward(bytes32 session, bytes32 leaf, bytes32[] calldata proof) external view returns (bool) {
        bytes32 root = _sessions[session].awardsRoot;
        return root != bytes32(0) && MerkleProof.verifyCalldata(proof, root, leaf);
    }

    /// @notice The EIP-712 struct hash of a Validation.
    /// @param v The validation.
    function hashValidation(Validation calldata v) public pure returns (bytes32) {
        return
            keccak256(
                abi.encode(
                    VALIDATION_TYPEHASH,
                    v.session,
                    v.round,
                    v.awardsRoot,
                    v.decisionsRoot,
                    v.approvedCount,
                    v.rejectedCount,
                    v.nonce
                )
            );
    }

    /// @notice The EIP-712 struct hash of an Order (its id).
    /// @param order The order.
    function hashOrder(Order calldata order) public pure returns (bytes32) {
        return
            keccak256(
                abi.encode(
                    ORDER_TYPEHASH,
                    order.session,
                    order.offerHash,
                    order.requestHash,
                    order.mtuStart,
                    order.mtuCount,
                    order.powerW,
                    order.nonce,
                    order.expiry
                )
            );
    }

    /// @notice The leaf hash of an order-book offer (kind 4).
    /// @param offerHash The offer's EIP-712 struct hash.
    function offerLeaf(bytes32 offerHash) external pure returns (bytes32) {
        return FlexLeaves.offer(offerHash);
    }

    /// @notice The leaf hash of an order-book request (kind 5).
    /// @param requestHash The request's EIP-712 struct hash.
    function requestLeaf(bytes32 requestHash) external pure returns (bytes32) {
        return FlexLeaves.request(requestHash);
    }

    /// @notice The leaf hash of an award (kind 6), which is also the award's hash.
    /// @param session The session.
    /// @param offerHash The offer served.
    /// @param requestHash The request served.
    /// @param mtuStart Start of the MTU in seconds.
    /// @param powerW Awarded power in W.
    /// @param priceCentsPerMwh Price in cents per MWh.
    function awardLeaf(
        bytes32 session,
        bytes32 offerHash,
        bytes32 requestHash,
        uint64 mtuStart,
        uint64 powerW,
        uint64 priceCentsPerMwh
    ) external pure returns (bytes32) {
        return FlexLeaves.award(session, offerHash, requestHash, mtuStart, powerW, priceCentsPerMwh);
    }

    /// @notice The leaf hash of a validation decision (kind 8).
    /// @param awardLeaf_ The award's leaf hash.
    /// @param approved Whether the DSO approved it.
    /// @param reason id32 of the reason code, zero when approved.
    function decisionLeaf(bytes32 awardLeaf_, bool approved, bytes32 reason) external pure returns (bytes32) {
        return FlexLeaves.decision(awardLeaf_, approved, reason);
    }

    /// @notice The FlexRoles contract.
    function roles() external view returns (IFlexRoles) {
        return _roles;
    }
}
