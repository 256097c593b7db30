// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Market sessions, their commitments, validations and activation orders
interface IFlexMarket {
    /// @notice A session moves only forward: None → Open → GateClosed → OutcomeCommitted → Settled.
    enum SessionState {
        None,
        Open,
        GateClosed,
        OutcomeCommitted,
        Settled
    }

    /// @notice A session as stored on chain. `kind`: 0 day-ahead, 1 real-time.
    struct Session {
        uint8 kind;
        SessionState state;
        uint64 deliveryStart;
        uint32 mtuCount;
        uint32 validationRounds;
        uint32 awardCount;
        uint64 gateClosedBlock;
        uint64 totalCostCents;
        uint32 offerCount;
        uint32 requestCount;
        bytes32 baselineMethod;
        bytes32 pricingRule;
        bytes32 orderBookRoot;
        bytes32 awardsRoot;
    }

    /// @notice A DSO's technical validation of a round's preliminary awards (I-07), EIP-712 signed.
    struct Validation {
        bytes32 session;
        uint32 round;
        bytes32 awardsRoot;
        bytes32 decisionsRoot;
        uint32 approvedCount;
        uint32 rejectedCount;
        uint64 nonce;
    }

    /// @notice A recorded validation round.
    struct ValidationRecord {
        bytes32 validationHash;
        bytes32 awardsRoot;
        bytes32 decisionsRoot;
        address dso;
        uint32 approvedCount;
        uint32 rejectedCount;
    }

    /// @notice An activation order of an award (I-09), EIP-712 signed by a DSO or TSO.
    struct Order {
        bytes32 session;
        bytes32 offerHash;
        bytes32 requestHash;
        uint64 mtuStart;
        uint32 mtuCount;
        uint64 powerW;
        uint64 nonce;
        uint64 expiry;
    }

    /// @notice The caller does not hold MARKET_OPERATOR_ROLE.
    error FlexMarketNotOperator(address account);
    /// @notice A session with this id already exists.
    error FlexMarketSessionExists(bytes32 session);
    /// @notice The session is not in the state this step needs.
    error FlexMarketWrongState(bytes32 session, SessionState actual, SessionState expected);
    /// @notice Unknown session kind (0 day-ahead, 1 real-time).
    error FlexMarketInvalidKind(uint8 kind);
    /// @notice A session must cover at least one MTU.
    error FlexMarketEmptyDelivery();
    /// @notice Validation rounds are numbered 1, 2, … without gaps.
    error FlexMarketRoundOutOfOrder(bytes32 session, uint32 expected, uint32 round);
    /// @notice The signature is malformed.
    error FlexMarketInvalidSignature();
    /// @notice The validation is not signed by a key holding DSO_ROLE.
    error FlexMarketSignerNotDso(address signer);
    /// @notice The order is not signed by a key holding DSO_ROLE or TSO_ROLE.
    error FlexMarketSignerNotIssuer(address signer);
    /// @notice The outcome's awards root is not the one the last validation round approved
    /// with no rejection (or no round was recorded).
    error FlexMarketOutcomeNotValidated(bytes32 session, bytes32 awardsRoot);
    /// @notice This order is already recorded.
    error FlexMarketOrderExists(bytes32 orderHash);

    /// @notice The market operator opened a session.
    event SessionOpened(
        bytes32 indexed session,
        uint8 kind,
        uint64 deliveryStart,
        uint32 mtuCount,
        bytes32 baselineMethod,
        bytes32 pricingRule
    );
    /// @notice The gate closed; the order book's root is committed.
    event SessionGateClosed(bytes32 indexed session, bytes32 orderBookRoot, uint32 offerCount, uint32 requestCount);
    /// @notice A DSO-signed validation round was recorded.
    event ValidationRecorded(
        bytes32 indexed session,
        uint32 indexed round,
        address indexed dso,
        bytes32 validationHash,
        bytes32 awardsRoot,
        bytes32 decisionsRoot,
        uint32 approvedCount,
        uint32 rejectedCount
    );
    /// @notice The final outcome of a session was committed.
    event SessionOutcomeCommitted(bytes32 indexed session, bytes32 awardsRoot, uint64 totalCostCents, uint32 awardCount);
    /// @notice An activation order was recorded with its issuer's signature checked.
    event OrderRecorded(
        bytes32 indexed orderHash,
        bytes32 indexed session,
        address indexed issuer,
        bytes32 offerHash,
        bytes32 requestHash,
        uint64 mtuStart,
        uint32 mtuCount,
        uint64 powerW
    );
    /// @notice The session was settled.
    event SessionSettled(bytes32 indexed session);

    /// @notice A session (state None when unknown).
    function sessionOf(bytes32 session) external view returns (Session memory);

    /// @notice Whether `leaf` is in the session's awards root.
    function verifyAward(bytes32 session, bytes32 leaf, bytes32[] calldata proof) external view returns (bool);
}
